# first line: 244
@experiment
def run_single_task(config: SingleTaskConfig) -> dict:
    """Train encoder + one head on one digit's labels; record val curves and final val/test metrics."""
    if config.task not in HEADS:
        raise ValueError(f"task must be one of {HEADS}, got {config.task!r}")
    started = time.perf_counter()
    device = train.pick_device(current_device())
    column = 1 + HEADS.index(config.task)  # (x, left, right): keep x and this task's labels
    sets = {split: (t[0], t[column]) for split, t in prepared(config.pair_seed, device)[0].items()}
    torch.manual_seed(config.seed)
    model = _OneHead(config.task).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    history = train.fit(model, optimizer, sets["train"], epochs=config.epochs, batch_size=config.batch_size,
                        seed=config.seed, evals={"val": sets["val"]}, progress=current_progress())
    return {
        "config": asdict(config),
        "history": history.as_dict(),
        "final": {split: train.evaluate(model, sets[split]) for split in ("val", "test")},
        "meta": train.run_metadata(device, started, models.count_parameters(model)),
    }
