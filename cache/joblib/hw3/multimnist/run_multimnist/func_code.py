# first line: 135
@experiment
def run_multimnist(config: MultiMNISTConfig) -> dict:
    """Train the two-head net; record per-task curves (train, val) and final val/test metrics."""
    if config.optimizer != "adam":
        raise ValueError(f"only 'adam' is implemented for MultiMNIST, got {config.optimizer!r}")
    started = time.perf_counter()
    device = train.pick_device(current_device())
    sets, norm = prepared(config.pair_seed, device)
    torch.manual_seed(config.seed)
    model = models.MultiMNISTNet().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    history = train.fit(model, optimizer, sets["train"], epochs=config.epochs, batch_size=config.batch_size,
                        seed=config.seed, evals={"val": sets["val"]}, heads=HEADS, progress=current_progress())
    return {
        "config": asdict(config),
        "history": history.as_dict(),
        "final": {split: train.evaluate(model, sets[split], HEADS) for split in ("val", "test")},
        "normalization": norm,
        "state_dict": train.state_dict_numpy(model),
        "meta": train.run_metadata(device, started, models.count_parameters(model)),
    }
