"""The Gradio layer: one module per tab, wiring the core stations; no business logic here."""
