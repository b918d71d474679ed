# first line: 66
@experiment
def run_fashion(config: FashionConfig) -> dict:
    """Train one Part 2 model for `config.epochs` epochs; record curves, final val/test metrics and weights."""
    started = time.perf_counter()
    device = train.pick_device(current_device())
    splits = data.image_splits("FashionMNIST", permuted=config.permuted)
    torch.manual_seed(config.seed)
    model = make_model(config.model).to(device)
    history = train.fit(model, make_optimizer(config, model.parameters()), _on(device, splits.train),
                        epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
                        evals={"val": _on(device, splits.val)}, progress=current_progress())
    return {
        "config": asdict(config),
        "history": history.as_dict(),
        "final": {"val": train.evaluate(model, _on(device, splits.val)), "test": train.evaluate(model, _on(device, splits.test))},
        "normalization": {"mean": splits.mean, "std": splits.std},
        "state_dict": train.state_dict_numpy(model),
        "meta": train.run_metadata(device, started, models.count_parameters(model)),
    }
