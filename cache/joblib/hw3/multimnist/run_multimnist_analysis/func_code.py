# first line: 180
@experiment
def run_multimnist_analysis(config: AnalysisConfig) -> dict:
    """Per-class test accuracy of each head for the run chosen on validation, and how the two digits' ink overlaps."""
    results = {c.name: run_multimnist(c) for c in config.sweep}  # cached: loads, does not retrain
    chosen = best_on_validation(results)
    result = results[chosen]
    images, _ = data.load_raw("MNIST", train=False)
    left_idx, right_idx = random_pairs(len(images), config.sweep[0].pair_seed + 2)  # as in multimnist_splits
    digits = data.to_float(images)[:, 0]
    left, right = (torch.zeros(len(images), CANVAS, CANVAS) for _ in range(2))
    left[:, :DIGIT, :DIGIT], right[:, OFFSET:, OFFSET:] = digits[left_idx], digits[right_idx]
    left_ink, right_ink = left > config.ink_threshold, right > config.ink_threshold
    both = (left_ink & right_ink).sum((1, 2)).float()
    square = slice(OFFSET, DIGIT)
    x, y_left, y_right = prepared(config.sweep[0].pair_seed, torch.device("cpu"))[0]["test"]
    model = train.load_state_dict_numpy(models.MultiMNISTNet(), result["state_dict"]).eval()
    with torch.inference_mode():
        logits = [torch.cat(parts) for parts in zip(*(model(xb) for xb in x.split(train.eval_batch_size(x.device))))]
    per_class = {}
    for head, z, y in (("left", logits[0], y_left), ("right", logits[1], y_right)):
        right_pred = (z.argmax(1) == y).float()
        per_class[head] = [right_pred[y == k].mean().item() for k in range(10)]
    return {
        "chosen": chosen,
        "per_class_acc": per_class,
        # share of a digit's ink pixels that the other digit's ink also covers
        "ink_covered": {"left": (both / left_ink.sum((1, 2))).mean().item(), "right": (both / right_ink.sum((1, 2))).mean().item()},
        # share of a digit's ink that falls inside the 20×20 overlap square
        "ink_in_overlap": {"left": (left[:, square, square].sum((1, 2)) / left.sum((1, 2))).mean().item(),
                           "right": (right[:, square, square].sum((1, 2)) / right.sum((1, 2))).mean().item()},
    }
