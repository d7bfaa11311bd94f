"""No secret reaches a generated file or the answers file: logger credentials come from the environment at run time."""

import re
from pathlib import Path

import pytest
import yaml
from conftest import Render, answers_of

FAKE_SECRETS = {
    "WANDB_API_KEY": "wandb-fake-key-6f1c",
    "MLFLOW_TRACKING_TOKEN": "mlflow-fake-token-93ab",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-fake-password-07de",
    "GITHUB_TOKEN": "ghp_fakefakefake0123456789",
    "HF_TOKEN": "hf_fakefakefake0123",
}
CREDENTIAL_WORDS = re.compile(r"api_?key|token|secret|password", re.IGNORECASE)


@pytest.mark.parametrize("logger", ["tensorboard", "csv", "wandb", "mlflow", "none"])
def test_no_secret_is_written_and_loggers_read_credentials_from_the_environment(
    render: Render, monkeypatch: pytest.MonkeyPatch, logger: str
) -> None:
    for name, value in FAKE_SECRETS.items():
        monkeypatch.setenv(name, value)
    project = render({"logger": logger})
    for path in (path for path in project.rglob("*") if path.is_file() and ".git" not in path.parts):
        text = path.read_text(encoding="utf-8")
        leaked = [name for name, value in FAKE_SECRETS.items() if value in text]
        assert not leaked, f"{path.relative_to(project)} holds the value of {leaked}"
    answers = answers_of(project)
    assert not [key for key in answers if CREDENTIAL_WORDS.search(key)], "the answers file stores a credential"
    trainer = yaml.safe_load((project / "configs/default.yaml").read_text(encoding="utf-8"))["trainer"]
    logger_config = trainer["logger"] or {}
    init_args = logger_config.get("init_args", {}) if isinstance(logger_config, dict) else {}
    assert not [key for key in init_args if CREDENTIAL_WORDS.search(key)], "a logger credential is set in the config"


def test_the_questions_ask_for_no_credential() -> None:
    questions = yaml.safe_load((Path(__file__).resolve().parents[1] / "copier.yml").read_text(encoding="utf-8"))
    assert not [name for name in questions if CREDENTIAL_WORDS.search(name)]
