"""
The local provider's agent command imports csvc as installed, whatever the
control plane's working directory holds.
"""

import subprocess

from csvc.providers.local import agent_command


def test_agent_ignores_the_working_directory(tmp_path):
    # A package named csvc where the control plane was started: an agent
    # that imported it would fail before printing its usage.
    poisoned = tmp_path / "csvc"
    poisoned.mkdir()
    (poisoned / "__init__.py").write_text('raise ImportError("csvc imported from the working directory")\n')
    command = agent_command("tcp:127.0.0.1:9", 1, ("--help",))
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "from the working directory" not in done.stdout + done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    assert "--connect" in done.stdout
