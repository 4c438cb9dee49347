"""Export: merge, Hub, GGUF, Modelfile/Ollama, verification."""
