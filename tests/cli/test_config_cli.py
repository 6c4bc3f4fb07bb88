"""The settings file: ``ipsms config`` and profiles, with real files in a tmp dir and the CLI
run in-process. The resolution order (flag > env > profile > default) is checked for every
command that takes a setting, through ``config show --resolved``, and by a few real effects."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from ipsms.cli.app import COMMANDS, app_command
from ipsms.cli.config import command_tree, key_of
from ipsms.config import EXTRA_SETTINGS, KEYS
from ipsms.errors import ExitCode
from tests.conftest import cli_env, run_ipsms
from tests.deliver.test_delivery import ScriptedServer, replies


def ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def config_file(ipsms_home: Path) -> Path:
    return ipsms_home / "config.toml"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def leaves() -> list[tuple[tuple[str, ...], Any]]:
    group = app_command()
    out = []
    for name in COMMANDS:
        if name == "config":  # its --format is for its own output, not a setting
            continue
        command = group.commands[name]
        if hasattr(command, "commands"):
            out.extend(((name, sub), leaf) for sub, leaf in command.commands.items())
        else:
            out.append(((name,), command))
    return out


def resolved(*args: str, env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    result = run_ipsms("config", "show", "--resolved", "--format", "json", *args, env=env)
    assert result.returncode == 0, result.stderr
    return {row["key"]: row for row in ndjson(result.stdout)}


# -- the schema --------------------------------------------------------------------------------
def test_the_keys_are_exactly_the_commands_settings() -> None:
    """KEYS (known without building a command) names each option that has an environment
    variable, plus the listed extras: a new such option needs its key."""
    found = {
        key
        for _, leaf in leaves()
        for p in leaf.params
        if p.param_type_name == "option"
        and p.opts
        and (key := p.opts[0].lstrip("-").replace("-", "_"))
        and (p.envvar or key in EXTRA_SETTINGS)
    }
    assert found == set(KEYS)
    assert {key_of(p) for _, leaf in leaves() for p in leaf.params} - {None} == set(KEYS)


def test_command_tree_names_every_group_command() -> None:
    tree = command_tree()
    assert set(tree["messages"]) == {"list", "show", "export", "clear", "tail"}
    assert set(tree["auth"]) == {"login", "status", "logout"}
    assert tree["listen"] == {}


# -- path, set, get, unset, show ---------------------------------------------------------------
def test_path_follows_ipsms_config_then_ipsms_home(ipsms_home: Path, tmp_path: Path) -> None:
    assert run_ipsms("config", "path").stdout == f"{ipsms_home / 'config.toml'}\n"
    env = cli_env(IPSMS_CONFIG=str(tmp_path / "elsewhere.toml"))
    assert run_ipsms("config", "path", env=env).stdout == f"{tmp_path / 'elsewhere.toml'}\n"


def test_set_creates_a_private_file_and_get_reads_it(ipsms_home: Path, config_file: Path) -> None:
    assert not ipsms_home.exists()
    result = run_ipsms("config", "set", "port", "9000")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(ipsms_home.stat().st_mode) == 0o700
    assert config_file.read_text() == "[profiles.default]\nport = 9000\n"
    assert run_ipsms("config", "get", "port").stdout == "9000\n"
    assert (
        run_ipsms("config", "set", "--profile", "work", "listen.read_timeout", "2s").returncode == 0
    )
    assert run_ipsms("--profile", "work", "config", "get", "listen.read_timeout").stdout == "2s\n"
    assert 'read_timeout = "2s"' in config_file.read_text()


def test_set_keeps_the_users_comments_and_order(config_file: Path) -> None:
    write(config_file, '# my settings\n[profiles.default]\nhost = "0.0.0.0"  # all\n# the end\n')
    config_file.chmod(0o640)
    assert run_ipsms("config", "set", "format", "json").returncode == 0
    assert config_file.read_text() == (
        '# my settings\n[profiles.default]\nhost = "0.0.0.0"  # all\n# the end\nformat = "json"\n'
    )
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o640  # an existing file keeps its mode
    assert run_ipsms("config", "unset", "host").returncode == 0
    assert "host" not in config_file.read_text() and "# my settings" in config_file.read_text()


def test_set_through_a_symlink_writes_the_target(tmp_path: Path) -> None:
    target = write(tmp_path / "dotfiles" / "ipsms.toml", "[profiles.default]\n")
    link = tmp_path / "link.toml"
    link.symlink_to(target)
    env = cli_env(IPSMS_CONFIG=str(link))
    assert run_ipsms("config", "set", "port", "1234", env=env).returncode == 0
    assert link.is_symlink() and "port = 1234" in target.read_text()


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("port", "70000", "less than or equal to 65535"),
        ("hmac", "md5", "md5"),
        ("listen.basic_auth", "nopass", "USER:PASS"),
        ("forward_to", "ftp://x/", "ftp"),
        ("port", "abc", "integer"),
        ("listen.signature_mode", "rsa", "'rsa' is not one of"),
        ("max_body", "lots", "cannot read the size"),
        ("read_timeout", "forever", "--read-timeout"),
        ("listen.read_timeout", "2h", "not between 100ms and 1h"),
        ("region", "mars", "'mars' is not one of"),
        ("timeout", "0", "must be more than 0 seconds"),
    ],
)
def test_set_checks_the_value_with_the_flags_parser(
    config_file: Path, key: str, value: str, says: str
) -> None:
    result = run_ipsms("config", "set", key, value)
    assert result.returncode == ExitCode.USAGE
    assert result.stderr.startswith("ipsms: error: ") and says in result.stderr
    assert result.stderr.count("\n") == 1
    assert not config_file.exists()


def test_set_refuses_unknown_keys_and_commands_with_a_suggestion(config_file: Path) -> None:
    result = run_ipsms("config", "set", "prot", "1")
    assert result.returncode == ExitCode.USAGE
    assert "unknown key 'prot' (did you mean 'port'?)" in result.stderr
    assert "known keys: api_base," in result.stderr
    result = run_ipsms("config", "set", "lisen.port", "1")
    assert result.returncode == ExitCode.USAGE and "did you mean 'listen'?" in result.stderr
    result = run_ipsms("config", "set", "simulate.port", "1")  # a key simulate does not take
    assert result.returncode == ExitCode.USAGE and "has no setting 'port'" in result.stderr
    result = run_ipsms("config", "set", "--profile", "../x", "port", "1")
    assert result.returncode == ExitCode.USAGE and "profile name '../x'" in result.stderr
    assert not config_file.exists()


def test_get_and_unset_of_a_missing_key_exit_10() -> None:
    assert run_ipsms("config", "get", "port").returncode == ExitCode.NOT_FOUND
    assert run_ipsms("config", "unset", "port").returncode == ExitCode.NOT_FOUND


def test_show_masks_secrets(config_file: Path) -> None:
    write(
        config_file,
        '[profiles.default]\nsecret = "hunter2"\nport = 9000\n'
        'forward_to = "http://u:pw@127.0.0.1:3000/"\n'
        '[profiles.work.listen]\nngrok_authtoken = "tok123"\n'
        'basic_auth = "me:pass"\n',
    )
    config_file.chmod(0o600)
    result = run_ipsms("config", "show", "--format", "plain")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        'profiles.default.secret = "****"',
        "profiles.default.port = 9000",
        'profiles.default.forward_to = "http://u:****@127.0.0.1:3000/"',
        'profiles.work.listen.ngrok_authtoken = "****"',
        'profiles.work.listen.basic_auth = "****"',
    ]
    rows = ndjson(run_ipsms("config", "show", "--profile", "work", "--format", "json").stdout)
    assert rows == [
        {"profile": "work", "key": "listen.ngrok_authtoken", "value": "****", "line": 6},
        {"profile": "work", "key": "listen.basic_auth", "value": "****", "line": 7},
    ]
    resolved_rows = resolved("listen")
    assert resolved_rows["secret"]["value"] == "****"
    assert "hunter2" not in run_ipsms("config", "show", "--resolved").stdout
    assert run_ipsms("config", "get", "secret").stdout == "hunter2\n"  # for scripts


def test_show_without_settings_says_so_and_where_they_would_be(config_file: Path) -> None:
    """`config show` printed nothing at all when there is no settings file: stdout stays empty
    (a script reads no settings), stderr says there is no file and where it would be."""
    assert not config_file.exists()
    for fmt in ("plain", "json"):
        result = run_ipsms("config", "show", "--format", fmt)
        assert (result.returncode, result.stdout) == (0, "")
        assert result.stderr == (
            f"ipsms config: no settings file: {config_file} does not "
            "exist; `ipsms config set KEY VALUE` creates it (IPSMS_CONFIG "
            "names another file)\n"
        )
    write(config_file, "# nothing set yet\n")
    empty = run_ipsms("config", "show")
    assert (empty.returncode, empty.stdout) == (0, "")
    assert empty.stderr == f"ipsms config: no settings in {config_file}\n"
    assert run_ipsms("-q", "config", "show").stderr == ""


def test_a_readable_file_with_secrets_is_warned_about(config_file: Path) -> None:
    write(config_file, '[profiles.default]\nsecret = "hunter2"\n')
    config_file.chmod(0o644)
    result = run_ipsms("config", "show", "--resolved", "verify")
    assert result.returncode == 0
    assert "holds secrets and other users can read it; run `chmod 600" in result.stderr
    assert run_ipsms("-q", "config", "show", "--resolved", "verify").stderr == ""
    config_file.chmod(0o600)
    assert run_ipsms("config", "show", "--resolved", "verify").stderr == ""


# -- resolution order, command by command -------------------------------------------------------
# Three different valid values for each key: (profile, environment, flag).
VALUES: dict[str, tuple[str, str, str]] = {
    "host": ("10.0.0.1", "10.0.0.2", "10.0.0.3"),
    "port": ("9001", "9002", "9003"),
    "secret": ("a", "b", "c"),
    "signature_mode": ("plain", "hmac", "auto"),
    "hmac": ("sha1", "sha512", "sha1:message+refid"),
    "db": ("/tmp/a.sqlite3", "/tmp/b.sqlite3", "/tmp/c.sqlite3"),
    "format": ("json", "plain", "table"),
    "max_body": ("2MiB", "3MiB", "4MiB"),
    "read_timeout": ("2s", "3s", "4s"),
    "max_connections": ("10", "20", "30"),
    "forward_to": ("http://127.0.0.1:1/", "http://127.0.0.1:2/", "http://127.0.0.1:3/"),
    "forward_timeout": ("2s", "3s", "4s"),
    "basic_auth": ("u:a", "u:b", "u:c"),
    "ngrok_authtoken": ("a", "b", "c"),
    "ngrok_path": ("/a/ngrok", "/b/ngrok", "/c/ngrok"),
    "ngrok_region": ("eu", "ap", "au"),
    "ngrok_domain": ("a.example", "b.example", "c.example"),
    "tunnel_timeout": ("2s", "3s", "4s"),
    "public_url": ("https://a.example/", "https://b.example/", "https://c.example/"),
    "region": ("eu", "us", "eu"),
    "api_base": ("http://127.0.0.1:1/", "http://127.0.0.1:2/", "http://127.0.0.1:3/"),
    "auth_url": ("http://127.0.0.1:1/a", "http://127.0.0.1:2/a", "http://127.0.0.1:3/a"),
    "auth_scheme": ("raw", "bearer", "raw"),
    "token": ("a", "b", "c"),
    "username": ("a", "b", "c"),
    "password": ("a", "b", "c"),
    "api_timeout": ("2s", "3s", "4s"),
    "max_attempts": ("2", "3", "4"),
    "timeout": ("2s", "3s", "4s"),
    "retry_delays": ("1,2", "1,3", "1,4"),
    "to": ("http://127.0.0.1:1/", "http://127.0.0.1:2/", "http://127.0.0.1:3/"),
    "inspect": ("127.0.0.1:9001", "127.0.0.1:9002", "off"),
}


def _settings() -> list[tuple[tuple[str, ...], str, str, str | None]]:
    return [
        (path, key_of(p) or "", p.opts[0], p.envvar if isinstance(p.envvar, str) else None)
        for path, leaf in leaves()
        for p in leaf.params
        if key_of(p)
    ]


@pytest.mark.parametrize(
    ("path", "key", "flag", "envvar"),
    _settings(),
    ids=lambda v: v if isinstance(v, str) else " ".join(v or ()),
)
def test_flag_beats_env_beats_profile_beats_default(
    config_file: Path,
    path: tuple[str, ...],
    key: str,
    flag: str,
    envvar: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IPSMS_INSPECT", raising=False)  # the suite's own setting (conftest)
    profile, from_env, from_flag = VALUES[key]
    write(config_file, f'[profiles.default]\n{key} = "{profile}"\n')
    config_file.chmod(0o600)
    assert resolved(*path)[key]["source"] == f"profile default in {config_file}:2"
    if envvar is not None:
        env = cli_env(**{envvar: from_env})
        assert resolved(*path, env=env)[key]["source"] == f"env {envvar}"
        assert resolved(*path, flag, from_flag, env=env)[key]["source"] == f"flag {flag}"
    assert resolved(*path, flag, from_flag)[key]["source"] == f"flag {flag}"
    config_file.unlink()
    assert resolved(*path)[key]["source"] == "default"


def test_values_come_through_parsed(config_file: Path) -> None:
    write(
        config_file,
        '[profiles.default]\nport = 9001\nread_timeout = "2s"\n'
        'signature_mode = "hmac"\ndb = "~/x.sqlite3"\n'
        "[profiles.default.listen]\nport = 9100\n",
    )
    rows = resolved("listen")
    assert rows["port"]["value"] == 9100  # the command's table beats the profile's top
    assert rows["read_timeout"]["value"] == 2.0
    assert rows["signature_mode"]["value"] == "hmac"
    assert rows["db"]["value"] == str(Path("~/x.sqlite3").expanduser())
    assert resolved("api-emulator")["port"]["value"] == 9001


def test_profile_named_before_after_or_by_env(config_file: Path) -> None:
    write(
        config_file,
        "[profiles.default]\nport = 1001\n[profiles.work]\nport = 2002\n"
        "[profiles.home]\nport = 3003\n",
    )
    assert resolved("listen")["port"]["value"] == 1001
    assert resolved("--profile", "work", "listen")["port"]["value"] == 2002
    assert resolved("listen", "--profile", "work")["port"]["value"] == 2002
    home = cli_env(IPSMS_PROFILE="home")
    assert resolved("listen", env=home)["port"]["value"] == 3003
    assert resolved("--profile", "work", "listen", env=home)["port"]["value"] == 2002
    result = run_ipsms("--profile", "wrok", "config", "show", "--resolved", "listen")
    assert result.returncode == ExitCode.USAGE
    assert f"no profile 'wrok' in {config_file} (did you mean 'work'?)" in result.stderr


# -- real effects ------------------------------------------------------------------------------
async def test_simulate_signs_with_the_profiles_secret_and_env_wins(config_file: Path) -> None:
    write(
        config_file,
        '[profiles.default]\nsecret = "from-file"\nformat = "plain"\n'
        '[profiles.other]\nsecret = "other-file"\n',
    )
    config_file.chmod(0o600)
    async with ScriptedServer(replies(200, 200, 200, 200)) as server:
        plain = await asyncio.to_thread(run_ipsms, "simulate", server.url())
        as_json = await asyncio.to_thread(run_ipsms, "simulate", server.url(), "--format", "json")
        from_env = await asyncio.to_thread(
            run_ipsms, "simulate", server.url(), env=cli_env(IPSMS_SECRET="from-env")
        )
        other = await asyncio.to_thread(run_ipsms, "simulate", "--profile", "other", server.url())
    for result in (plain, as_json, from_env, other):
        assert result.returncode == 0, result.stderr
    signatures = [json.loads(r.body)["signature"] for r in server.received]
    assert signatures == ["from-file", "from-file", "from-env", "other-file"]
    with pytest.raises(json.JSONDecodeError):  # format = "plain" from the profile
        json.loads(plain.stdout.splitlines()[0])
    assert ndjson(as_json.stdout)[-1]["type"] == "outcome"  # the flag beats it


def test_secret_and_format_from_the_profile_drive_verify(config_file: Path) -> None:
    body = json.dumps(
        {
            "refid": "r" * 32,
            "from": "+13035550100",
            "to": "+13038675309",
            "message": "hi",
            "signature": "s3cret",
        }
    )
    write(
        config_file,
        '[profiles.default.verify]\nsecret = "s3cret"\nformat = "json"\n'
        '[profiles.wrong]\nsecret = "nope"\nformat = "plain"\n',
    )
    config_file.chmod(0o600)
    ok = run_ipsms("verify", "-", "--signature-mode", "plain", input=body, tty=True)
    assert ok.returncode == 0, ok.stderr
    assert ndjson(ok.stdout)[0]["verdict"] == "valid"  # JSON on a terminal: the profile's format
    bad = run_ipsms("verify", "--profile", "wrong", "--signature-mode", "plain", input=body)
    assert bad.returncode == ExitCode.SIGNATURE_INVALID
    with pytest.raises(json.JSONDecodeError):  # plain lines on a pipe: the profile's format
        json.loads(bad.stdout.splitlines()[0])


# -- a broken file ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("[profiles.default]\nport = \n", ":2:8: not valid TOML: invalid value"),
        (
            "[profiles.default]\nprot = 9000\n",
            ":2: unknown key 'profiles.default.prot' (did you mean 'port'?)",
        ),
        (
            "[profiles.default.lisen]\nport = 9000\n",
            ":1: unknown key 'profiles.default.lisen' (did you mean 'listen'?)",
        ),
        ('colour = "red"\n', ":1: unknown key 'colour'"),
        ('[profiles.default]\nport = "abc"\n', ":2, profiles.default.port: port = 'abc': "),
        ("[profiles.default]\nport = 1e400\n", ": profiles.default.port must be a finite number"),
        (
            "[profiles.default]\nport = true\n",
            ":2, profiles.default.port: port must be a whole number, not true/false",
        ),
        (
            "[profiles.default]\nport = 70000\n",
            ":2, profiles.default.port: port = '70000': input "
            "should be less than or equal to 65535",
        ),
        ("[profiles.default]\nport = 1.5\n", "port must be a whole number, not a number"),
        (
            "[profiles.default]\nport = [1, 2]\n",
            "profiles.default.port must be one value, not a list",
        ),
        (
            "[profiles.default.port]\nx = 1\n",
            ":1: profiles.default.port must be a value, not a table",
        ),
        ("[profiles.default]\nport = 1979-05-27\n", "not a date or time"),
        ("profiles = 3\n", "'profiles' must be a table"),
        ("[profiles]\ndefault = 3\n", "profiles.default must be a table"),
        ('[profiles."a b"]\nport = 1\n', ":1: profile name 'a b' is not allowed"),
        ('[profiles.default.listen]\nto = "http://x/"\n', "`ipsms listen` has no setting 'to'"),
        (b'[profiles.default]\nhost = "\xff"\n', ":2: the settings file is not UTF-8 text"),
    ],
)
def test_a_broken_file_is_one_clear_error_naming_file_and_line(
    config_file: Path, content: Any, says: str
) -> None:
    write(config_file, content)
    result = run_ipsms("listen", "--port", "0")
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert result.stderr.startswith(f"ipsms: error: {config_file}")
    assert says in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_a_huge_file_a_directory_are_refused(config_file: Path) -> None:
    write(config_file, "# " + "x" * (1024 * 1024) + "\n")
    result = run_ipsms("verify", "--secret", "s", input="{}")
    assert result.returncode == ExitCode.USAGE and "larger than 1 MiB" in result.stderr
    config_file.unlink()
    config_file.mkdir()
    result = run_ipsms("verify", "--secret", "s", input="{}")
    assert result.returncode == ExitCode.STATE and "is a directory" in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_a_state_error(config_file: Path) -> None:
    write(config_file, "[profiles.default]\n").chmod(0)
    result = run_ipsms("listen", "--port", "0")
    assert result.returncode == ExitCode.STATE and "cannot read the settings file" in result.stderr


def test_help_version_and_config_commands_work_with_a_broken_file(config_file: Path) -> None:
    write(config_file, "[profiles.default\n")
    assert run_ipsms("--version").returncode == 0
    assert run_ipsms("listen", "--help").returncode == 0
    assert run_ipsms("config", "path").returncode == 0
    result = run_ipsms("config", "set", "port", "1")
    assert result.returncode == ExitCode.USAGE and "fix it in an editor first" in result.stderr
    result = run_ipsms("config", "show")
    assert result.returncode == ExitCode.USAGE and ":1:" in result.stderr


def _default_of(help_text: str, flag: str) -> str:
    """The ``[... default: X]`` part of ``flag``'s entry in ``help_text``, unwrapped."""
    lines = help_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(flag + " "))
    entry = " ".join(line.strip() for line in lines[start : start + 6])
    entry = entry[: entry.index("]") + 1]
    return entry[entry.index("default: ") + len("default: ") : -1].split(";")[0]


def test_help_shows_the_profiles_values_as_defaults(config_file: Path) -> None:
    write(
        config_file,
        '[profiles.default.listen]\nport = 9123\nforward_timeout = "30s"\n'
        'forward_to = "http://u:pw@127.0.0.1:3000/sms"\nsecret = "hunter2"\n'
        'basic_auth = "bob:pass1"\n'
        "[profiles.work.listen]\nport = 9555\n",
    )
    config_file.chmod(0o600)
    plain = run_ipsms("listen", "--help", env=cli_env(COLUMNS="80"))
    assert plain.returncode == 0, plain.stderr
    assert _default_of(plain.stdout, "--port") == "9123"
    assert _default_of(plain.stdout, "--forward-timeout") == "(30s)"
    assert _default_of(plain.stdout, "--forward-to") == "http://u:****@127.0.0.1:3000/sms"
    for secret in ("hunter2", "pass1", ":pw@"):
        assert secret not in plain.stdout
    note = " ".join(plain.stdout.split()[-20:])
    assert (
        f"Settings from profile 'default' of {config_file} apply: --basic-auth, "
        "--forward-timeout, --forward-to, --port, --secret. The defaults shown are "
        "theirs." in note
    )
    # Wherever the profile is named, and whether --help is read before --profile or after.
    for args, env in (
        (("--profile", "work", "listen", "--help"), {}),
        (("listen", "--profile", "work", "--help"), {}),
        (("listen", "--help", "--profile", "work"), {}),
        (("listen", "-h", "--profile=work"), {}),
        (("listen", "--help"), {"IPSMS_PROFILE": "work"}),
    ):
        shown = run_ipsms(*args, env=cli_env(**env))
        assert shown.returncode == 0, (args, shown.stderr)
        assert _default_of(shown.stdout, "--port") == "9555", args
        assert _default_of(shown.stdout, "--forward-timeout") == "(10s)", args
        assert "profile 'work'" in shown.stdout
    # The descriptions are put back: the next help in this process shows the built-in one.
    assert (
        _default_of(run_ipsms("listen", "--help", "--profile", "work").stdout, "--forward-timeout")
        == "(10s)"
    )


def test_help_escapes_what_a_hand_edited_file_holds(config_file: Path) -> None:
    write(config_file, '[profiles.default.listen]\nhost = "\\u001b[31mRED\\u202e"\n')
    shown = run_ipsms("listen", "--help", tty=True)
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout and "\u202e" not in shown.stdout
    assert _default_of(shown.stdout, "--host") == "\\e[31mRED\\u202e"


def test_help_without_settings_shows_the_built_in_defaults(config_file: Path) -> None:
    shown = run_ipsms("listen", "--help")
    assert _default_of(shown.stdout, "--port") == "8765"
    assert "Settings from profile" not in shown.stdout and shown.stderr == ""
    write(config_file, "[profiles.default.simulate]\ncount = 7\n")
    assert "Settings from profile" not in run_ipsms("listen", "--help").stdout
    assert "--count" in run_ipsms("simulate", "--help").stdout.split("Settings from")[-1]


@pytest.mark.parametrize(
    "text, args, why",
    [
        ("[profiles.default.listen\nport=", ("listen", "--help"), "not valid TOML"),
        ('[profiles.default.listen]\nport = "abc"\n', ("listen", "--help"), "port"),
        ("", ("listen", "--help", "--profile", "nope"), "no profile 'nope'"),
        ("", ("listen", "--help", "--profile", "bad name"), "'bad name' is not allowed"),
    ],
)
def test_help_is_shown_even_when_the_settings_cannot_be_used(
    config_file: Path, text: str, args: tuple[str, ...], why: str
) -> None:
    write(config_file, text)
    shown = run_ipsms(*args)
    assert shown.returncode == 0
    assert _default_of(shown.stdout, "--port") == "8765"
    assert shown.stderr.startswith(
        "ipsms: warning: the defaults shown leave out the settings file: "
    )
    assert why in shown.stderr and len(shown.stderr.splitlines()) == 1
