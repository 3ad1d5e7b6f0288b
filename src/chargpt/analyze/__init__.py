"""The analyse command, `python -m chargpt.analyze`: what a GPT config costs, and inside a model.

- `estimates`: parameters by component, tying, the memory of a training step (pure computation)
- `internals`: a model's hidden states and attention patterns (`inspect_model`)
- `report`, `plots`: the tables, summary.md/summary.json and the figures
"""
