"""The README's two commands are the ones CI and users run."""
import re

from conftest import REPO


def _blocks():
    return re.findall(r"```bash\n(.*?)\n```", (REPO / "README.md").read_text(), re.S)


def test_ci_runs_the_readme_test_command():
    test_cmd = next(b for b in _blocks() if "pytest" in b)
    assert test_cmd.strip() in (REPO / ".ci/run").read_text()


def test_readme_main_command_runs_the_default_study():
    main = _blocks()[0]
    assert "pip install -e ." in main and "snakemake --cores all" in main
    assert (REPO / "config/config.yaml").is_file()
