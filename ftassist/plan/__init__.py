"""The Decide and Estimate steps: should I fine-tune, how, and what will each option cost?

- guide.py: the questionnaire and table-driven recommendation (RAG / fine-tune / both / prompt);
- pricing.py + prices.json: OpenAI fine-tuning bills (billed tokens, auto epochs, inference);
- hardware.py + models.json + gpus.json: GPU memory, time and dollars for full/LoRA/QLoRA;
- estimate.py: every option side by side, each figure with how it was computed.
Token counts come from the Data step's report; nothing here tokenises a dataset.
"""
