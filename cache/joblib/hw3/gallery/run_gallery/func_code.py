# first line: 23
@experiment
def run_gallery(config: GalleryConfig) -> dict:
    """The first training images of FashionMNIST (as stored, and as the permuted runs see them) and of MultiMNIST."""
    splits = data.image_splits("FashionMNIST", permuted=False)
    permuted = data.image_splits("FashionMNIST", permuted=True)
    n, m = config.n_fashion, config.n_multimnist
    canvases = multimnist.multimnist_splits().train
    return {
        "fashion_images": (splits.train[0][:n, 0] * splits.std + splits.mean).numpy(),  # back to [0, 1]
        "fashion_labels": splits.train[1][:n].numpy(),
        "fashion_permuted": (permuted.train[0][:n, 0] * permuted.std + permuted.mean).numpy(),
        "permutation": permuted.permutation.permutation.numpy(),
        "normalization": {"mean": splits.mean, "std": splits.std},
        "multimnist_images": canvases[0][:m].numpy().astype(np.float32) / 255.0,
        "multimnist_left": canvases[1][:m].numpy(),
        "multimnist_right": canvases[2][:m].numpy(),
    }
