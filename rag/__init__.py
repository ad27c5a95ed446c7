"""Bilingual (Chinese + English) retrieval-augmented QA over medical papers, with verified quotes."""

from __future__ import annotations

__version__ = "0.1.0"
