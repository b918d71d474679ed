# first line: 117
@experiment
def run_bonus_final(config: BonusFinalConfig) -> dict:
    """The single test-set evaluation of the bonus: confusion matrix and some misclassified images."""
    ablation = {c.name: run_bonus(c) for c in config.ablation}  # cached runs: loads, does not retrain
    name, tta = choose(ablation)
    chosen = next(c for c in config.ablation if c.name == name)
    splits = data.image_splits("FashionMNIST")
    model = train.load_state_dict_numpy(models.BonusCNN(chosen.width, chosen.batchnorm, chosen.dropout), ablation[name]["state_dict"])
    x_test, y_test = splits.test
    predicted = train.predictions(model, x_test, tta_flip=tta)
    truth = y_test.numpy()
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    wrong = np.flatnonzero(predicted != truth)[: config.n_misclassified]
    return {
        "chosen": name,
        "tta": tta,
        "val_acc": ablation[name]["final"]["val_tta" if tta else "val"]["acc"],
        "test": train.evaluate(model, splits.test, tta_flip=tta),
        "confusion": confusion,
        "misclassified": {"images": (x_test[wrong, 0] * splits.std + splits.mean).numpy(), "true": truth[wrong], "predicted": predicted[wrong]},
    }
