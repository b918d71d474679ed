# first line: 122
@experiment
def run_multimnist(config: MultiMNISTConfig) -> dict:
    """Train the two-head net; record per-task curves (train, val) and final val/test metrics."""
    started = time.perf_counter()
    device = train.pick_device(current_device())
    splits = multimnist_splits(config.pair_seed)
    pixels = data.to_float(splits.train[0])
    mean, std = pixels.mean().item(), pixels.std().item()

    def ready(split):
        x = data.to_float(split[0]).sub_(mean).div_(std)
        return tuple(t.to(device) for t in (x, split[1], split[2]))

    torch.manual_seed(config.seed)
    model = models.MultiMNISTNet().to(device)
    if config.optimizer != "adam":
        raise ValueError(f"only 'adam' is implemented for MultiMNIST, got {config.optimizer!r}")
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    val, test = ready(splits.val), ready(splits.test)
    history = train.fit(model, optimizer, ready(splits.train), epochs=config.epochs, batch_size=config.batch_size,
                        seed=config.seed, evals={"val": val}, heads=HEADS, progress=current_progress())
    return {
        "config": asdict(config),
        "history": history.as_dict(),
        "final": {"val": train.evaluate(model, val, HEADS), "test": train.evaluate(model, test, HEADS)},
        "normalization": {"mean": mean, "std": std},
        "state_dict": train.state_dict_numpy(model),
        "meta": train.run_metadata(device, started, models.count_parameters(model)),
    }
