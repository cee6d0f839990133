"""The batch evaluator: test-set loaders, image decoding, the model registry, and the run that decodes each
test set once per preprocessing and writes every model's predictions to the store (one process or many).
"""
