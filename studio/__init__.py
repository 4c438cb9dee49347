"""The web UI: one module per tab plus the app assembly. Imports core, never the reverse."""
