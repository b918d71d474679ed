# first line: 65
@experiment
def run_bonus(config: BonusConfig) -> dict:
    """Train one ablation step on the 50k training split; evaluate on validation only (plain and flip-averaged)."""
    started = time.perf_counter()
    device = train.pick_device(current_device())
    splits = data.image_splits("FashionMNIST")
    fill = -splits.mean / splits.std  # a black pixel after normalisation
    augment = Augmentation(config.crop_padding, config.hflip, config.erasing, fill)
    torch.manual_seed(config.seed)
    model = models.BonusCNN(config.width, config.batchnorm, config.dropout).to(device)
    train_set, val = tuple(t.to(device) for t in splits.train), tuple(t.to(device) for t in splits.val)
    optimizer, scheduler = _optimizer(config, model, -(-len(train_set[0]) // config.batch_size))
    history = train.fit(model, optimizer, train_set, epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
                        evals={"val": val}, label_smoothing=config.label_smoothing,
                        augment=augment if augment.active else None, scheduler=scheduler,
                        progress=current_progress())
    return {
        "config": asdict(config),
        "history": history.as_dict(),
        "final": {"val": train.evaluate(model, val), "val_tta": train.evaluate(model, val, tta_flip=True)},
        "state_dict": train.state_dict_numpy(model),
        "meta": train.run_metadata(device, started, models.count_parameters(model)),
    }
