"""The prediction store and what fills it from outside: released predictions and published tables.

``records``: one atomically written record per (source, model, test set), per-image top-5 and an accuracy row.
``importers``: the ImageNetV2 / CIFAR-10.1 releases and the timm / imagenet-testbed tables -> store.
The store imports only the ground floor (files, metrics, test sets); everything else reads it.
"""
