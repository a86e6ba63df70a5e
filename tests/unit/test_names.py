import pytest

from ripdep import names
from ripdep.errors import BadInput


@pytest.mark.parametrize("name", ["a", "hello", "shop-a", "a1", "x" * 31, "app-2-b"])
def test_valid_app_names(name):
    assert names.check_app_name(name) == name


@pytest.mark.parametrize("name", [
    "", "A", "Hello", "1app", "-app", "app-", "x" * 32, "shop_a", "shop.a", "shop a", "shop;rm",
    "shop\n", "shöp", "app/../x", "root", "postgres", "postgresql", "caddy", "www-data", "ripdep",
    "systemd-foo", "nobody", "sshd", "daemon", "ripdep-x",
])
def test_invalid_or_reserved_app_names(name):
    with pytest.raises(BadInput):
        names.check_app_name(name)


@pytest.mark.parametrize("key", ["A", "_X", "DATABASE_URL2", "lower_ok"])
def test_valid_env_keys(key):
    assert names.check_env_key(key, "t") == key


@pytest.mark.parametrize("key", ["", "1A", "A-B", "A B", "A=B", "A\nB", "Ä"])
def test_invalid_env_keys(key):
    with pytest.raises(BadInput):
        names.check_env_key(key, "t")


@pytest.mark.parametrize("value", ["", "plain", "with space", "q\"uote's", "$HOME", "100%", "back\\slash", "new\nline", "ü €"])
def test_env_values_accepted(value):
    assert names.check_env_value(value, "t") == value


@pytest.mark.parametrize("value", ["nul\x00", "\udcff", 5, None])
def test_env_values_refused(value):
    with pytest.raises(BadInput):
        names.check_env_value(value, "t")


@pytest.mark.parametrize("host", ["shop.example.com", "a.b", "x-1.example.org"])
def test_valid_hosts(host):
    assert names.check_host_name(host, "t") == host


@pytest.mark.parametrize("host", ["localhost", "Shop.example.com", "*.example.com", "a..b", "-a.b", "a.b:80",
                                  "http://a.b", "a.b {", "a.b\nimport x", "a b.c", "a.b/x"])
def test_invalid_hosts(host):
    with pytest.raises(BadInput):
        names.check_host_name(host, "t")


@pytest.mark.parametrize("path", ["/", "/healthz", "/a/b/", "/v1.0/x_y~z"])
def test_valid_paths(path):
    assert names.check_url_path(path, "t") == path


@pytest.mark.parametrize("path", ["", "healthz", "/a b", "/a{", "/a}", "//x", "/a/../b", "/a\n", "/a;b", "/a*"])
def test_invalid_paths(path):
    with pytest.raises(BadInput):
        names.check_url_path(path, "t")
