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


@pytest.mark.parametrize("path", ["/x/./", "/x/.", "/./", "/a/../", "/..", "/" + "a" * 1024])
def test_dot_segments_and_huge_paths_refused(path):
    with pytest.raises(BadInput, match="invalid path"):
        names.check_url_path(path, "t")


@pytest.mark.parametrize("path", ["/.well-known/", "/a.b/", "/..x/", "/x../"])
def test_dots_inside_a_segment_are_fine(path):
    assert names.check_url_path(path, "t") == path


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.1", "[::1]", "::1", "localhost", "LOCALHOST", "localhost.",
                                  "127.1", "0x7f.0.0.1", "1.2.3.999"])
def test_ip_literals_and_localhost_are_not_host_names(host):
    with pytest.raises(BadInput, match="IP address"):
        names.check_host_name(host, "manifest key 'route.host'")


@pytest.mark.parametrize("host", ["1.example.com", "app.localhost", "10.0.0.1.nip.io", "x.io"])
def test_names_with_digits_are_still_host_names(host):
    assert names.check_host_name(host, "t") == host


@pytest.mark.parametrize("host, site", [
    ("example.com", "http://example.com"),
    ("example.com", "example.com:8080"),
    ("example.com", "https://Example.com/"),
    ("shop.example.com", "a.example.org, shop.example.com"),
    ("shop.example.com", "http://a.example.org http://shop.example.com:80"),
    ("shop.example.com", "*.example.com"),
    ("localhost", "localhost:80"),
    ("127.0.0.1", "127.0.0.1"),
    ("::1", "[::1]:80"),
])
def test_host_equal_to_the_path_route_site_is_refused(host, site):
    with pytest.raises(BadInput, match="route.host.*path-route site"):
        names.check_host_not_site(host, site)


@pytest.mark.parametrize("host, site", [
    ("shop.example.com", ":80"),
    ("shop.example.com", "http://:80"),
    ("shop.example.com", "localhost:80"),
    ("shop.example.com", "127.0.0.1"),
    ("shop.example.com", "http://example.com"),
    ("a.shop.example.com", "*.example.com"),  # a wildcard stands for one label only
    ("example.com", "*.example.com"),
])
def test_other_hosts_pass_the_site_check(host, site):
    assert names.check_host_not_site(host, site) == host


def test_env_values_have_a_size_limit():
    assert names.check_env_value("x" * names.MAX_ENV_VALUE, "t")
    with pytest.raises(BadInput, match="bytes"):
        names.check_env_value("x" * (names.MAX_ENV_VALUE + 1), "t")
    with pytest.raises(BadInput, match="bytes"):  # counted in UTF-8 bytes, not characters
        names.check_env_value("€" * (names.MAX_ENV_VALUE // 3 + 1), "t")


@pytest.mark.parametrize("value", ["a\x85b", "a\u2028b", "a\u2029b", "a\x7fb", "a\rb", "\ud800"])
def test_plain_text_refuses_every_line_break_and_control(value):
    with pytest.raises(BadInput, match="control characters"):
        names.check_plain_text(value, "t")


@pytest.mark.parametrize("value", ["/usr/bin/python3", "ü €", "a b", "\u200b"])
def test_plain_text_accepts_printable_unicode(value):
    assert names.check_plain_text(value, "t") == value
