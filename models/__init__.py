"""The model artifact and what runs it: a model directory's card and files (`models.card`),
ONNX Runtime scoring (`models.onnx`), and reason codes from the booster (`models.explain`,
exact TreeSHAP from per-leaf tables in `models.treeshap`). `models/default/` is the
committed default model (`make model` rebuilds it).

Pure like `features/`: no Ray. Training writes model directories with `ModelDir`; serving,
`fraud score` and `fraud models` read them with it.
"""
