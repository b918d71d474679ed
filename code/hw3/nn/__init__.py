"""The ML core: datasets as tensors, augmentation, the networks and the training loop. Knows nothing of experiments."""
