"""Semantic mutations of a rendered project: each breaks one behaviour that the project's own tests must catch.

A mutation is data: the file, the exact text it replaces (found exactly once, or the check names the mutation and
fails: re-aim it at the current code), the replacement, the generated tests that must fail, and why it matters.
`tests/test_mutations.py` applies each to a fresh copy of a rendered project and runs those tests.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str  # relative to the project; {package} is the package folder under src/
    original: str
    replacement: str
    tests: tuple[str, ...]  # pytest node ids of the generated suite; one of them must fail
    why: str
    answer_set: str = "defaults"  # the answer set (tests/answer_sets.py) whose project it mutates


class MutationTargetError(AssertionError):
    """The text a mutation replaces is not in its file once: the code moved on and the mutation must be re-aimed."""


MODEL = "src/{package}/model.py"
DATA = "src/{package}/data.py"
DATAMODULE = "src/{package}/datamodule.py"
PREPROCESS = "src/{package}/preprocess.py"
PREDICTIONS = "src/{package}/predictions.py"
CHECKPOINTS = "src/{package}/checkpoints.py"
TABLE_CACHE = "src/{package}/table_cache.py"
EXPORT = "src/{package}/export.py"
SERVE = "src/{package}/serve.py"
PREPROCESS_TESTS = "tests/test_preprocess.py"
DATAMODULE_TESTS = "tests/test_datamodule.py"
CLI = "src/{package}/cli.py"
CALLBACKS = "src/{package}/callbacks.py"
FAULTS = "src/{package}/fault_tolerance.py"
SUMMARY = "src/{package}/run_summary.py"
TUNE = "src/{package}/tune.py"
SWEEP = "src/{package}/sweep.py"
SEARCH_SPACE = "src/{package}/search_space.py"
DEFAULT_CONFIG = "configs/default.yaml"
TRAINING = "tests/test_training.py"
RUNS = "tests/test_runs.py"
FAULT_TESTS = "tests/test_fault_tolerance.py"
STOPS = "tests/test_stops.py"
SWEEP_TESTS = "tests/test_sweep.py"
SYNC_TEST = "tests/test_device_syncs.py::test_the_default_config_syncs_no_more_per_step_than_a_plain_loop"

MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "StopOnNonFiniteLoss never raises",
        FAULTS,
        "        if finite.all():\n",
        "        if True:\n",
        (f"{FAULT_TESTS}::test_a_non_finite_loss_stops_training_naming_the_step",),
        "a NaN loss would train on and overwrite good checkpoints",
    ),
    Mutation(
        "the progress bar redraws at Lightning's default rate",
        CALLBACKS,
        "RunProgressBar(refresh_rate=10)",
        "RunProgressBar()",
        (f"{TRAINING}::test_the_progress_bar_redraws_ten_times_a_second_unless_one_is_configured",),
        "a redraw thread at 100 per second took 7% of a small model's fit, and far more on a busy machine",
    ),
    Mutation(
        "RNGStateCheckpoint restores nothing",
        FAULTS,
        '        torch.set_rng_state(state_dict["torch"])\n',
        "        torch.set_rng_state(torch.get_rng_state())\n",
        (f"{FAULT_TESTS}::test_sigkill_mid_epoch_resumes_like_an_uninterrupted_run",),
        "a resumed run would see other batches and dropout masks than an uninterrupted one",
    ),
    Mutation(
        "PreemptionCheckpoint saves on any exception",
        FAULTS,
        "        if not stopped or trainer.state.fn != TrainerFn.FITTING:",
        "        if trainer.state.fn != TrainerFn.FITTING:",
        (f"{FAULT_TESTS}::test_an_error_leaves_no_interrupted_checkpoint",),
        "a crashed run would leave a checkpoint that `--ckpt_path last` resumes into the crash",
    ),
    Mutation(
        "--ckpt_path last picks the oldest checkpoint",
        CHECKPOINTS,
        "key=lambda path: path.stat().st_mtime, reverse=True)",
        "key=lambda path: path.stat().st_mtime)",
        (f"{TRAINING}::test_ckpt_path_last_takes_the_newest_of_several_runs",),
        "a resume would restart from an old run",
    ),
    Mutation(
        "EarlyStopping disabled in configs/default.yaml (patience 1000)",
        DEFAULT_CONFIG,
        "ExtendableEarlyStopping  # resumable with more epochs\n      init_args:\n        monitor: val/acc\n"
        "        mode: max\n        patience: 8  # validations without a better score\n",
        "ExtendableEarlyStopping\n      init_args:\n        monitor: val/acc\n        mode: max\n        patience: 1000\n",
        (f"{TRAINING}::test_early_stopping_ends_a_plateaued_run",),
        "a plateaued run would train all max_epochs",
    ),
    Mutation(
        "EarlyStopping checks at the end of every training epoch, validated or not",
        DEFAULT_CONFIG,
        "        check_on_train_epoch_end: false  # after each validation: an epoch cut short by max_steps has none\n",
        "",
        (f"{STOPS}::test_a_fresh_run_ends_where_its_bound_says",),
        "`fit --trainer.max_steps=1` (the README's one-batch advice) and `--trainer.limit_val_batches=0` would crash: "
        "'Early stopping conditioned on metric val/acc which is not available'",
    ),
    Mutation(
        "last.ckpt is written after validations only",
        DEFAULT_CONFIG,
        "        save_on_train_epoch_end: true  # every epoch's end: the final step of any run\n",
        "",
        (f"{STOPS}::test_a_fresh_run_ends_where_its_bound_says",),
        "with check_val_every_n_epoch or val_check_interval, the epochs after the last validation would be lost",
    ),
    Mutation(
        "the best checkpoint ranks epochs that did not validate",
        DEFAULT_CONFIG,
        "lightning_project.callbacks.BestCheckpoint",
        "lightning.pytorch.callbacks.ModelCheckpoint",
        (f"{STOPS}::test_a_fresh_run_ends_where_its_bound_says",),
        "`fit --trainer.max_steps=1` would warn that the model never logged val/acc, and an epoch cut short would be "
        "ranked by an earlier epoch's score",
    ),
    Mutation(
        "the learning-rate monitor needs a logger",
        DEFAULT_CONFIG,
        "lightning_project.callbacks.LearningRateLogger",
        "lightning.pytorch.callbacks.LearningRateMonitor",
        (f"{STOPS}::test_a_fresh_run_ends_where_its_bound_says",),
        "`--trainer.logger=false` would refuse to train",
    ),
    Mutation(
        "the run summary misses early stopping",
        SUMMARY,
        "    if stopping is None or stopping.stopping_reason == EarlyStoppingReason.NOT_STOPPED:\n",
        "    if True:\n",
        (f"{STOPS}::test_the_summary_names_early_stopping_with_its_patience_and_the_best_epoch",),
        "a run stopped early would say it reached max_epochs, or that something unknown stopped it",
    ),
    Mutation(
        "the progress bar shows v_num",
        CALLBACKS,
        '        metrics.pop("v_num", None)\n',
        "",
        (f"{STOPS}::test_the_progress_bar_shows_metrics_but_no_version_number",),
        "the bar would show the logger's version as a metric, `v_num: 0.000`",
    ),
    Mutation(
        "the tuner loads its temporary checkpoints without weights_only",
        TUNE,
        "    cli.trainer.strategy.checkpoint_io = WeightsOnlyCheckpointIO()\n",
        "",
        ("tests/test_tune.py::test_tune_writes_suggestions_that_fit_accepts",),
        "before torch 2.6 the tuner would unpickle whatever its checkpoints hold, unlike every other load",
    ),
    Mutation(
        "GradNormLogger never logs",
        CALLBACKS,
        "            logger.log_metrics(metrics, step=trainer.global_step)\n",
        "            logger.log_metrics({}, step=trainer.global_step)\n",
        (f"{RUNS}::test_the_gradient_norm_reaches_the_logger_at_its_step",),
        "exploding gradients would go unseen",
    ),
    Mutation(
        "the optimizer ignores model.lr",
        MODEL,
        "AdamW(trainable, lr=self.lr,",
        "AdamW(trainable, lr=3e-3,",
        (f"{TRAINING}::test_model_lr_sets_the_size_of_the_first_update",),
        "--model.lr, the tuner's and the sweep's learning rates would change nothing",
    ),
    Mutation(
        "training_step cuts the graph: no weight learns",
        MODEL,
        "        loss: Tensor = self.criterion(output, target)\n",
        "        loss: Tensor = self.criterion(output.detach().requires_grad_(), target)\n",
        (f"{TRAINING}::test_model_lr_sets_the_size_of_the_first_update",),
        "training would run, log losses and never change a weight",
    ),
    Mutation(
        "predictions report the least likely class's probability as confidence",
        PREDICTIONS,
        "probabilities.max(axis=-1), *probabilities.T]",
        "probabilities.min(axis=-1), *probabilities.T]",
        ("tests/test_predict.py::test_new_inputs_get_one_row_each_in_input_order_as_in_python",),
        "predictions.csv would carry wrong confidences",
    ),
    Mutation(
        "predict re-fits the preprocessing on the inputs it predicts",
        DATAMODULE,
        "        if self.preprocessor is None:\n            self.preprocessor = Preprocessor(",
        "        if True:\n            self.preprocessor = Preprocessor(",
        ("tests/test_datamodule.py::test_the_preprocessor_is_fitted_once_and_a_given_one_is_kept",),
        "new inputs would be encoded with other statistics than the training rows: skewed predictions",
    ),
    Mutation(
        "the csv answer re-fits its encoding on the table it evaluates",
        DATAMODULE,
        "        preprocessor = self.preprocessor or self.options\n",
        "        preprocessor = self.options\n",
        ("tests/test_datamodule.py::test_a_checkpoints_encoding_is_used_for_another_table",),
        "a checkpoint evaluated or fine-tuned on another table would scale it by that table's own statistics",
        "csv_table",
    ),
    Mutation(
        "predictions of several processes or workers are not put back in input order",
        PREDICTIONS,
        "heapq.merge(*readers, key=lambda item: item[0])",
        "(item for reader in readers for item in reader)",
        ("tests/test_predict.py::test_the_parts_of_several_processes_are_merged_in_input_order",),
        "predictions.csv would list inputs out of order, or by process",
    ),
    Mutation(
        "--ckpt_path best takes the oldest run's best checkpoint",
        CHECKPOINTS,
        "    newest_run = find_last_checkpoint(root).parent\n",
        "    newest_run = training_checkpoints(root)[-1].parent\n",
        (f"{TRAINING}::test_ckpt_path_best_takes_the_newest_runs_best_and_no_sweep_trial_shadows_a_run",),
        "`test --ckpt_path best` would evaluate an old run",
    ),
    Mutation(
        "the split draws from the global random state",
        DATA,
        "        generator = torch.Generator().manual_seed(self.split_seed)\n",
        "        generator = None\n",
        ("tests/test_datamodule.py::test_split_is_the_same_twice",),
        "the test set would move between runs and leak into training",
    ),
    Mutation(
        "training batches are not shuffled",
        DATA,
        "        return self.loader(self.train_set, shuffle=True)\n",
        "        return self.loader(self.train_set, shuffle=False)\n",
        ("tests/test_datamodule.py::test_training_batches_are_shuffled_and_evaluation_batches_are_not",),
        "every epoch would see the batches in one order",
    ),
    Mutation(
        "validation runs on the test split",
        DATA,
        "        return self.loader(self.val_set)\n",
        "        return self.loader(self.test_set)\n",
        ("tests/test_datamodule.py::test_each_loader_serves_its_own_split",),
        "model selection would peek at the test set",
    ),
    Mutation(
        "pixels are not scaled to [0, 1]",
        PREPROCESS,
        "MAX_VALUE = 16.0",
        "MAX_VALUE = 1.0",
        ("tests/test_preprocess.py::test_pixels_are_scaled_to_the_unit_interval",),
        "inputs 16 times too large",
    ),
    Mutation(
        "abbreviated options are accepted",
        CLI,
        'no_abbreviations = {"allow_abbrev": False}',
        'no_abbreviations = {"allow_abbrev": True}',
        (f"{FAULT_TESTS}::test_a_misspelt_or_mistyped_option_is_refused_by_name_before_training",),
        "--trainer.max_epoch=3 would silently set max_epochs",
    ),
    Mutation(
        "checkpoints load with weights_only=False by default",
        CLI,
        "            config.weights_only = True",
        "            config.weights_only = False",
        (f"{FAULT_TESTS}::test_checkpoints_load_with_weights_only_by_default",),
        "loading a checkpoint could run its pickled code",
    ),
    Mutation(
        "--ckpt_path is not checked before Lightning loads it",
        CLI,
        '        if config.get("ckpt_path") not in LIGHTNING_CKPT_NAMES:\n',
        "        if False:\n",
        (f"{FAULT_TESTS}::test_a_bad_checkpoint_is_refused_naming_the_file",),
        "a truncated or unsafe checkpoint would fail deep in Lightning, or run code",
    ),
    Mutation(
        "config.yaml is saved outside the run's directory",
        CALLBACKS,
        "        directory = run_directory(trainer)\n        directory.mkdir",
        "        directory = Path(trainer.default_root_dir)\n        directory.mkdir",
        (f"{RUNS}::test_each_run_gets_one_directory_with_checkpoints_config_and_logs",),
        "runs would overwrite each other's config, and a run could not be repeated",
    ),
    Mutation(
        "the training loss is logged one step before Lightning writes it",
        CALLBACKS,
        "((trainer.global_step + 1) % every == 0",
        "(trainer.global_step % every == 0",
        (f"{RUNS}::test_the_training_loss_reaches_the_logger_at_every_logging_step",),
        "the loggers would show a loss from steps before the one they name, or none",
    ),
    Mutation(
        "PredictionWriter writes the first batch only",
        CALLBACKS,
        "        self.writer.writerows([position, *row] for position, row in zip(positions, rows, strict=True))\n",
        "        self.writer.writerows([position, *row] for position, row in zip(positions, rows, strict=True) if batch_idx == 0)\n",
        (f"{RUNS}::test_predict_writes_a_csv_and_prints_its_path",),
        "predictions.csv would silently miss samples",
    ),
    Mutation(
        "last.ckpt is written under another name",
        DEFAULT_CONFIG,
        "        filename: last\n",
        "        filename: final\n",
        (f"{RUNS}::test_each_run_gets_one_directory_with_checkpoints_config_and_logs",),
        "`--ckpt_path last` would find nothing to resume from",
    ),
    Mutation(
        "training accuracy averages per class",
        MODEL,
        '        return MulticlassAccuracy(self.hparams["num_outputs"], average="micro")\n',
        '        return MulticlassAccuracy(self.hparams["num_outputs"])\n',
        (SYNC_TEST,),
        "its bincount would make a GPU's host wait at every training step",
    ),
    Mutation(
        "the training loss goes to the progress bar at every step",
        MODEL,
        '        if is_logging_step(self.trainer):\n            self.log("train/loss", loss)\n',
        '        self.log("train/loss", loss, prog_bar=True)\n',
        (SYNC_TEST,),
        "the bar would copy the loss to the host at every step, stalling a GPU",
    ),
    Mutation(
        "sweep trials train without their sampled values",
        SWEEP,
        "str(trial.number)), *overrides], run=False)",
        "str(trial.number))], run=False)",
        (f"{SWEEP_TESTS}::test_a_short_sweep_finishes_and_its_best_config_trains",),
        "every trial would train the defaults and the best config would be noise",
        "optuna_sweep",
    ),
    Mutation(
        "sweep trials are never pruned",
        SWEEP,
        "        cli.trainer.callbacks.append(pruning)",
        "        [pruning]",
        (f"{SWEEP_TESTS}::test_a_pruned_trial_is_recorded_as_pruned",),
        "hopeless trials would run to the end",
        "optuna_sweep",
    ),
    Mutation(
        "the sweep accepts parameters that are not fit options",
        SEARCH_SPACE,
        "        if name in config and not isinstance(config[name], Namespace):\n",
        "        if True:\n",
        (f"{SWEEP_TESTS}::test_a_bad_search_space_is_refused_naming_the_entry",),
        "a typo (model.lrr) would fail every trial hours into a study instead of before the first",
        "optuna_sweep",
    ),
    Mutation(
        "the table's encoding is fitted on every row, not the training rows",
        TABLE_CACHE,
        'preprocessor.fit(table, kept[np.sort(splits["train"])], str(self.path))',
        "preprocessor.fit(table, kept, str(self.path))",
        (f"{PREPROCESS_TESTS}::test_the_encoding_is_fitted_on_the_training_rows_only",),
        "validation and test rows would leak into the statistics the model is judged with",
        "csv_table",
    ),
    Mutation(
        "the table cache ignores a changed file",
        TABLE_CACHE,
        '"file": [str(self.path.resolve()), stat.st_size, stat.st_mtime_ns],',
        '"file": [str(self.path.resolve())],',
        (f"{PREPROCESS_TESTS}::test_the_cache_is_written_once_reused_and_renewed_by_a_changed_file_or_option",),
        "an edited table would train on its old encoding",
        "csv_table",
    ),
    Mutation(
        "EXIF rotation is ignored",
        PREPROCESS,
        "                ImageOps.exif_transpose(image, in_place=True)\n",
        "",
        (f"{PREPROCESS_TESTS}::test_exif_orientation_is_honoured",),
        "photos from phones and cameras would train sideways",
        "image_folder",
    ),
    Mutation(
        "a damaged image is not replaced: its batch comes up short",
        "src/{package}/datamodule.py",
        "            candidate = (index + step) % len(self.images)\n",
        "            candidate = index\n",
        (f"{DATAMODULE_TESTS}::test_skipping_replaces_a_damaged_file_by_the_next_readable_one",),
        "a run would fail, or DDP ranks fall out of step, at the first damaged file",
        "image_folder",
    ),
    Mutation(
        "on_bad_image=stop goes on",
        DATA,
        '            if self.policy == "stop":\n',
        '            if self.policy == "never":\n',
        ("tests/test_data.py::test_the_policy_names_each_input_once_or_stops_naming_it",),
        "a user who asked to stop at a damaged file would train without it",
    ),
    Mutation(
        "export writes straight into the folder",
        EXPORT,
        "        replace(output, folder)\n",
        "        shutil.copytree(folder, output, dirs_exist_ok=True)\n",
        ("tests/test_export.py::test_a_failed_export_leaves_the_earlier_export_and_a_good_one_replaces_it_whole",),
        "a failed export would leave a folder that looks complete",
    ),
    Mutation(
        "the ONNX model has a fixed batch size",
        EXPORT,
        "            dynamic_shapes=(tuple({0: batch} for _ in example),),  # forward(*inputs) takes one tuple of inputs\n",
        "",
        ("tests/test_export.py::test_the_onnx_model_predicts_as_the_checkpoint_at_any_batch_size",),
        "the exported model would refuse any batch but the example's",
    ),
    Mutation(
        "a bad request fails the whole batch",
        SERVE,
        "            return Rejected(str(error), 422)\n",
        "            raise\n",
        ("tests/test_serve.py::test_requests_batched_together_are_predicted_at_once_and_a_bad_one_alone_fails",),
        "one client's bad request would fail every request batched with it",
    ),
)


def mutate(mutation: Mutation, text: str, path: Path) -> str:
    """`text` (of the file at `path`) with the mutation applied. The result must still parse: a mutation breaks
    behaviour, not syntax (a syntax error would be 'caught' by every test)."""
    found = text.count(mutation.original)
    if found != 1:
        raise MutationTargetError(
            f"mutation {mutation.name!r}: its original text occurs {found} times in {mutation.file}, not once; "
            f"re-aim it at the current code. Text:\n{mutation.original}"
        )
    mutated = text.replace(mutation.original, mutation.replacement)
    if path.suffix == ".py":
        compile(mutated, str(path), "exec")
    else:
        yaml.safe_load(mutated)
    return mutated


def target_file(mutation: Mutation, project: Path, package: str) -> Path:
    path = project / mutation.file.format(package=package)
    if not path.is_file():
        raise MutationTargetError(f"mutation {mutation.name!r}: {mutation.file} does not exist; re-aim it")
    return path


def apply(mutation: Mutation, project: Path, package: str) -> None:
    """Mutate the file in `project`, a disposable copy."""
    path = target_file(mutation, project, package)
    path.write_text(mutate(mutation, path.read_text(encoding="utf-8"), path), encoding="utf-8")


def slug(mutation: Mutation) -> str:
    return re.sub(r"\W+", "-", mutation.name.lower()).strip("-")
