"""Real rendering engines (Go text/template for Ollama, ...) used to check tmplc's targets."""
