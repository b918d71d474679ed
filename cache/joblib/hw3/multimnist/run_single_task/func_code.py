# first line: 240
@experiment
def run_single_task(config: SingleTaskConfig) -> dict:
    """Train encoder + one head on one digit's labels; record val curves and final val/test metrics."""
    if config.task not in HEADS:
        raise ValueError(f"task must be one of {HEADS}, got {config.task!r}")
    started = time.perf_counter()
    device = train.pick_device(current_device())
    splits = multimnist_splits(config.pair_seed)
    column = 1 + HEADS.index(config.task)
    pixels = data.to_float(splits.train[0])
    mean, std = pixels.mean().item(), pixels.std().item()

    def ready(split):
        return data.to_float(split[0]).sub_(mean).div_(std).to(device), split[column].to(device)

    torch.manual_seed(config.seed)
    model = _OneHead(config.task).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    val, test = ready(splits.val), ready(splits.test)
    history = train.fit(model, optimizer, ready(splits.train), epochs=config.epochs, batch_size=config.batch_size,
                        seed=config.seed, evals={"val": val}, progress=current_progress())
    return {
        "config": asdict(config),
        "history": history.as_dict(),
        "final": {"val": train.evaluate(model, val), "test": train.evaluate(model, test)},
        "meta": train.run_metadata(device, started, models.count_parameters(model)),
    }
