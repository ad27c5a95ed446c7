"""Performance benchmark of the rag pipeline: `python -m bench.run [--out DIR] [--quick] [--only ...]`.

One module per section (latency, coldstart, build, scale, langchain_baseline, memory); each returns a
`bench.common.Section` that `bench.report` prints as a table and writes to bench.json / bench.md.
Timings are reported, never asserted: tests/test_bench.py checks only the output structure.
"""
