"""The Gradio edge of the assistant: rendering, uploads and chat handlers. `rag/` never imports this."""
