"""Models: offline loading, the GGUF conversion cache and LoRA (needs the data layer only).

- :mod:`~cutkit.models.registry`: known model names (the bundled SmolLM2 GGUF) and resolving a
  name or path to a checkpoint;
- :mod:`~cutkit.models.cache`: GGUF -> safetensors conversion, cached and checked;
- :mod:`~cutkit.models.loading`: ``load_model`` / ``load_tokenizer``;
- :mod:`~cutkit.models.lora`: the paper's LoRA recipe, ``ModelSettings`` and ``apply_lora``;
- :mod:`~cutkit.models.tiny`: a tiny random Llama for tests and CI-scale notebooks.
"""
