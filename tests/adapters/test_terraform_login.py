"""Which Proxmox login the project's Terraform provider will use (adapters.terraform_state
.proxmox_login), as bpg/proxmox and Telmate/proxmox read it: the provider block first, then
their environment variables, an API token before a user; the identity shown, never a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.terraform import TerraformConfig
from adapters.terraform_state import (
    ProviderLogin,
    clone_sources,
    has_block,
    proxmox_endpoint,
    proxmox_login,
    resource_values,
)

SECRET = "0b5e2c1d-aaaa-bbbb-cccc-123456789abc"
TOKEN = f"terraform@pve!provider={SECRET}"
ENV_KEYS = ("PROXMOX_VE_API_TOKEN", "PROXMOX_VE_USERNAME", "PM_API_TOKEN_ID", "PM_USER",
            "TF_VAR_pm_token")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)


def project(tmp_path: Path, provider: str = "", **files: str) -> TerraformConfig:
    (tmp_path / "main.tf").write_text(
        'terraform {\n  required_providers {\n    proxmox = { source = "bpg/proxmox" }\n  }\n}\n'
        + (f'\nprovider "proxmox" {{\n{provider}\n  ssh {{\n    agent = true\n  }}\n}}\n'
           if provider else "")
        + 'variable "pm_token" {\n  type = string\n}\n')
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return TerraformConfig(str(tmp_path))


def assert_no_secret(login: ProviderLogin | None) -> None:
    assert login is None or SECRET not in repr(login)


def test_nothing_configured(tmp_path: Path) -> None:
    assert proxmox_login(project(tmp_path)) is None


def test_token_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXMOX_VE_API_TOKEN", TOKEN)
    login = proxmox_login(project(tmp_path, '  endpoint = "https://pve1:8006/"'))
    assert login == ProviderLogin("API token", "terraform@pve!provider",
                                  "PROXMOX_VE_API_TOKEN in the worker's environment")


def test_block_wins_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    monkeypatch.setenv("PROXMOX_VE_API_TOKEN", "other@pve!env=x")
    login = proxmox_login(project(tmp_path, f'  api_token = "{TOKEN}"'))
    assert login == ProviderLogin("API token", "terraform@pve!provider",
                                  "`api_token` in the provider block of main.tf")
    assert_no_secret(login)


def test_token_wins_over_a_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXMOX_VE_API_TOKEN", TOKEN)
    login = proxmox_login(project(tmp_path, '  username = "root@pam"\n  password = "pw"'))
    assert login is not None and login.identity == "terraform@pve!provider"
    monkeypatch.delenv("PROXMOX_VE_API_TOKEN")
    assert proxmox_login(project(tmp_path, '  username = "root@pam"\n  password = "pw"')) == \
        ProviderLogin("user", "root@pam", "`username` in the provider block of main.tf")


def test_variable_from_tf_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_VAR_pm_token", TOKEN)
    login = proxmox_login(project(tmp_path, "  api_token = var.pm_token"))
    assert login == ProviderLogin("API token", "terraform@pve!provider",
                                  "`api_token` in the provider block of main.tf, from "
                                  "TF_VAR_pm_token")


def test_variable_from_tfvars(tmp_path: Path) -> None:
    login = proxmox_login(project(tmp_path, "  api_token = var.pm_token",
                                  **{"terraform.tfvars": f'pm_token = "{TOKEN}"\n'}))
    assert login is not None and login.identity == "terraform@pve!provider"
    assert login.source.endswith("from terraform.tfvars")
    assert_no_secret(login)


def test_values_drbot_cannot_see(tmp_path: Path) -> None:
    login = proxmox_login(project(tmp_path, "  api_token = var.pm_token"))
    assert login == ProviderLogin("API token", "", "`api_token` in the provider block of "
                                  "main.tf (var.pm_token, a value drbot does not see)")
    login = proxmox_login(project(tmp_path, f'  api_token = trimspace("{TOKEN}")'))
    assert login is not None and login.identity == "" and "an expression" in login.source
    assert_no_secret(login)


def test_a_bare_secret_is_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXMOX_VE_API_TOKEN", SECRET)  # the secret without its id
    login = proxmox_login(project(tmp_path))
    assert login is not None and login.identity == ""
    assert_no_secret(login)


def test_telmate_token_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PM_API_TOKEN_ID", "terraform@pam!telmate")
    assert proxmox_login(project(tmp_path)) == ProviderLogin(
        "API token", "terraform@pam!telmate", "PM_API_TOKEN_ID in the worker's environment")


def test_the_secret_is_resolved_for_the_doctor_and_never_shown(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.setenv("TF_VAR_pm_token", TOKEN)
    login = proxmox_login(project(tmp_path, "  api_token = var.pm_token"))
    assert login is not None and login.secret == SECRET and login.visible
    assert_no_secret(login)
    monkeypatch.setenv("TF_VAR_pm_token", SECRET)  # no id: malformed, no secret taken
    login = proxmox_login(project(tmp_path, "  api_token = var.pm_token"))
    assert login is not None and login.identity == "" and login.secret == ""


def test_token_from_a_file_and_from_a_default(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    login = proxmox_login(project(tmp_path, f'  api_token = trimspace(file("{tmp_path}/token"))'))
    assert login is not None and (login.identity, login.secret) == ("terraform@pve!provider",
                                                                    SECRET)
    assert login.source.endswith(f"from file {tmp_path}/token")
    (tmp_path / "main.tf").write_text(
        'provider "proxmox" {\n  api_token = var.t\n}\n'
        f'variable "t" {{\n  type    = string\n  default = "{TOKEN}"\n}}\n')
    login = proxmox_login(TerraformConfig(str(tmp_path)))
    assert login is not None and login.secret == SECRET
    assert login.source.endswith("from the default of variable t")


def test_telmate_token_secret_and_endpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    monkeypatch.setenv("PM_API_TOKEN_ID", "terraform@pve!tf")
    monkeypatch.setenv("PM_API_TOKEN_SECRET", SECRET)
    monkeypatch.setenv("PM_API_URL", "https://pve1:8006/api2/json")
    config = project(tmp_path)
    login = proxmox_login(config)
    assert login is not None and (login.identity, login.secret) == ("terraform@pve!tf", SECRET)
    assert proxmox_endpoint(config) == ("https://pve1:8006", "PM_API_URL in the worker's "
                                        "environment")
    config = project(tmp_path, '  endpoint = "https://pve2:8006/"')
    assert proxmox_endpoint(config) == ("https://pve2:8006",
                                        "`endpoint` in the provider block of main.tf")


def test_datastores_bridges_and_clone_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    monkeypatch.setenv("TF_VAR_store", "fast")
    config = project(tmp_path, **{"vms.tf": (
        'resource "proxmox_virtual_environment_vm" "k3s" {\n'
        '  clone {\n    vm_id = 9000\n  }\n'
        '  disk {\n    datastore_id = "local-zfs"\n  }\n'
        '  disk {\n    datastore_id = var.store\n  }\n'
        '  efi_disk {\n    datastore_id = each.value.store\n  }\n'
        '  network_device {\n    bridge = "vmbr1"\n  }\n}\n')})
    values, unseen = resource_values(config, "datastore_id")
    assert values == {"local-zfs", "fast"}
    assert unseen == ["`datastore_id` in vms.tf (an expression, a value drbot does not see)"]
    assert resource_values(config, "bridge") == ({"vmbr1"}, [])
    assert clone_sources(config) == ({"9000"}, [])
    assert has_block(config, "network_device") and not has_block(config, "cdrom")
