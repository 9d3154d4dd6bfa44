"""RequestParser: bytes in, complete requests (or one refusal) out. No sockets."""

from __future__ import annotations

import pytest

from engage.http1.parser import MAX_HEAD_BYTES, MAX_HEADERS, RequestParser

CLIENT = ("192.0.2.7", 40000)


def parser(max_body_bytes: int = 1000) -> RequestParser:
    return RequestParser(CLIENT, max_body_bytes)


def feed(data: bytes, *, max_body_bytes: int = 1000, piece: int | None = None) -> RequestParser:
    p = parser(max_body_bytes)
    if piece is None:
        p.feed(data)
    else:
        for i in range(0, len(data), piece):
            p.feed(data[i:i + piece])
    return p


def assert_error(p: RequestParser, status: int, code: str | None = None) -> None:
    assert p.error is not None, "expected a parse error"
    assert p.error.status == status, (p.error.status, p.error.detail)
    if code is not None:
        assert p.error.code == code
    assert not p.requests


# -- plain requests ---------------------------------------------------------------------------

def test_simple_get():
    p = feed(b"GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example\r\n\r\n")
    assert p.error is None
    assert len(p.requests) == 1
    request = p.requests[0]
    assert request.method == "GET"
    assert request.target == b"/a/b?x=1&y=2"
    assert request.path == "/a/b"
    assert request.query_string == b"x=1&y=2"
    assert request.query == {"x": "1", "y": "2"}
    assert request.version == "1.1"
    assert request.keep_alive is True
    assert request.body == b""
    assert request.client == CLIENT
    assert request.header(b"host") == b"example"
    assert not p.in_progress


def test_header_names_are_lower_cased_values_kept():
    p = feed(b"GET / HTTP/1.1\r\nHost: h\r\nX-Mixed-CASE: Some Value\r\nACCEPT: a/b\r\n\r\n")
    request = p.requests[0]
    assert request.headers == [(b"host", b"h"), (b"x-mixed-case", b"Some Value"),
                               (b"accept", b"a/b")]
    assert request.header(b"x-mixed-case") == b"Some Value"
    assert request.header(b"X-Mixed-CASE") is None


def test_repeated_headers_are_joined():
    p = feed(b"GET / HTTP/1.1\r\nAccept: a\r\nAccept: b\r\n\r\n")
    assert p.requests[0].header(b"accept") == b"a, b"


def test_pipelined_requests_in_one_feed_come_out_in_order():
    data = (b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n")
    p = feed(data)
    assert p.error is None
    assert [(r.method, r.target, r.body) for r in p.requests] == [
        ("GET", b"/1", b""), ("POST", b"/2", b"abc"), ("GET", b"/3", b"")]
    assert not p.in_progress


def test_pipelined_requests_fed_byte_by_byte():
    data = (b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    p = feed(data, piece=1)
    assert [(r.target, r.body) for r in p.requests] == [(b"/1", b""), (b"/2", b"abc")]


def test_partial_request_is_in_progress_until_complete():
    p = parser()
    assert not p.in_progress
    p.feed(b"GET /x HTTP/1.1\r\nHo")
    assert p.in_progress and not p.requests
    p.feed(b"st: x\r\n\r\n")
    assert not p.in_progress
    assert [r.target for r in p.requests] == [b"/x"]


# -- bodies ------------------------------------------------------------------------------------

def test_body_by_content_length():
    p = feed(b"POST /e HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world")
    assert p.requests[0].body == b"hello world"


def test_body_by_content_length_in_pieces():
    p = feed(b"POST /e HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world", piece=3)
    assert len(p.requests) == 1
    assert p.requests[0].body == b"hello world"


def test_chunked_body_with_extensions_and_trailers():
    data = (b"POST /e HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;name=value\r\nhello\r\n"
            b"1\r\n \r\n"
            b"5;a=b;c\r\nworld\r\n"
            b"0\r\nX-Trailer: ignored\r\nX-Other: also\r\n\r\n")
    p = feed(data)
    assert p.error is None
    assert len(p.requests) == 1
    request = p.requests[0]
    assert request.body == b"hello world"
    assert request.header(b"x-trailer") is None
    assert request.header(b"x-other") is None
    assert request.header(b"transfer-encoding") == b"chunked"


def test_chunked_body_in_pieces_then_next_request():
    data = (b"POST /e HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"
            b"GET /next HTTP/1.1\r\n\r\n")
    p = feed(data, piece=2)
    assert [(r.target, r.body) for r in p.requests] == [(b"/e", b"abcdef"), (b"/next", b"")]


# -- framing that may smuggle: 400 -------------------------------------------------------------

def test_content_length_with_transfer_encoding_is_400():
    p = feed(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n")
    assert_error(p, 400, "bad_request")


def test_transfer_encoding_with_content_length_is_400():
    p = feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
             b"0\r\n\r\n")
    assert_error(p, 400, "bad_request")


@pytest.mark.parametrize("second", [b"3", b"4"])
def test_duplicate_content_length_is_400(second):
    p = feed(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: " + second
             + b"\r\n\r\nabcd")
    assert_error(p, 400, "bad_request")


@pytest.mark.parametrize("encoding", [b"gzip", b"chunked, gzip", b"identity"])
def test_transfer_encoding_not_ending_in_chunked_is_400(encoding):
    p = feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: " + encoding + b"\r\n\r\nabc")
    assert_error(p, 400, "bad_request")


def test_garbage_is_400():
    assert_error(feed(b"\x00\x01\x02 nonsense\r\n\r\n"), 400, "bad_request")


def test_error_stops_parsing_and_later_feeds_are_ignored():
    p = feed(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert_error(p, 400)
    error = p.error
    p.feed(b"GET /after HTTP/1.1\r\n\r\n")
    assert p.error is error
    assert not p.requests


def test_requests_before_an_error_are_kept():
    p = feed(b"GET /ok HTTP/1.1\r\n\r\n"
             b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert [r.target for r in p.requests] == [b"/ok"]
    assert p.error is not None and p.error.status == 400


# -- limits ------------------------------------------------------------------------------------

def _big_head(extra: int = 10) -> bytes:
    return (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEAD_BYTES + extra)
            + b"\r\n\r\n")


def test_head_larger_than_max_is_431():
    assert_error(feed(_big_head()), 431, "head_too_large")


@pytest.mark.parametrize("piece", [1, 7, 1000])
def test_head_larger_than_max_in_small_pieces_is_431(piece):
    assert_error(feed(_big_head(), piece=piece), 431, "head_too_large")


def test_many_moderate_headers_adding_up_past_max_is_431():
    lines = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 400) for i in range(MAX_HEAD_BYTES // 400 + 2))
    data = b"GET / HTTP/1.1\r\n" + lines + b"\r\n"
    assert_error(feed(data, piece=13), 431, "head_too_large")


def test_long_url_is_431():
    data = b"GET /" + b"u" * (MAX_HEAD_BYTES + 1) + b" HTTP/1.1\r\n\r\n"
    assert_error(feed(data, piece=500), 431, "head_too_large")


def test_head_just_under_max_is_accepted():
    data = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * (MAX_HEAD_BYTES - 100) + b"\r\n\r\n"
    p = feed(data)
    assert p.error is None
    assert len(p.requests) == 1


def test_unterminated_header_value_larger_than_max_is_431():
    p = parser()
    p.feed(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
    for _ in range(4 * MAX_HEAD_BYTES // 1000):
        p.feed(b"a" * 1000)
    assert p.error is not None and p.error.status == 431


def test_more_than_max_header_lines_is_431():
    lines = b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEADERS + 1))
    assert_error(feed(b"GET / HTTP/1.1\r\n" + lines + b"\r\n"), 431, "head_too_large")


def test_exactly_max_header_lines_is_accepted():
    lines = b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEADERS))
    p = feed(b"GET / HTTP/1.1\r\n" + lines + b"\r\n")
    assert p.error is None
    assert len(p.requests[0].headers) == MAX_HEADERS


def test_content_length_over_max_is_413_before_any_body():
    p = parser(max_body_bytes=100)
    p.feed(b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n")  # the head alone
    assert_error(p, 413, "too_large")


def test_content_length_at_max_is_accepted():
    p = feed(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + b"b" * 100, max_body_bytes=100)
    assert p.error is None
    assert p.requests[0].body == b"b" * 100


def test_chunked_body_over_max_is_413():
    data = (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"40\r\n" + b"a" * 64 + b"\r\n"
            b"40\r\n" + b"b" * 64 + b"\r\n0\r\n\r\n")
    assert_error(feed(data, max_body_bytes=100), 413, "too_large")
    assert_error(feed(data, max_body_bytes=100, piece=5), 413, "too_large")


def test_chunked_body_at_max_is_accepted():
    data = (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"32\r\n" + b"a" * 50 + b"\r\n32\r\n" + b"b" * 50 + b"\r\n0\r\n\r\n")
    p = feed(data, max_body_bytes=100)
    assert p.error is None
    assert p.requests[0].body == b"a" * 50 + b"b" * 50


@pytest.mark.parametrize("version", [b"2.0", b"0.9"])
def test_other_http_versions_are_505(version):
    assert_error(feed(b"GET / HTTP/" + version + b"\r\nHost: x\r\n\r\n"), 505, "http_version")


# -- keep-alive --------------------------------------------------------------------------------

def test_http10_is_not_keep_alive():
    request = feed(b"GET / HTTP/1.0\r\n\r\n").requests[0]
    assert request.version == "1.0"
    assert request.keep_alive is False


def test_http10_with_connection_keep_alive_is_keep_alive():
    request = feed(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").requests[0]
    assert request.version == "1.0"
    assert request.keep_alive is True


def test_http11_connection_close_is_not_keep_alive():
    assert feed(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").requests[0].keep_alive is False


def test_bytes_after_connection_close_request_are_ignored():
    p = feed(b"GET /last HTTP/1.1\r\nConnection: close\r\n\r\n"
             b"\x00\x01 this is not http at all\r\n\r\n")
    assert p.error is None
    assert [r.target for r in p.requests] == [b"/last"]
    assert p.requests[0].keep_alive is False


def test_request_after_connection_close_request_is_not_parsed():
    p = feed(b"GET /last HTTP/1.1\r\nConnection: close\r\n\r\nGET /more HTTP/1.1\r\n\r\n")
    assert p.error is None
    assert [r.target for r in p.requests] == [b"/last"]


# -- Expect: 100-continue ----------------------------------------------------------------------

def test_expect_continue_until_the_body_starts():
    p = parser()
    p.feed(b"POST /e HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    assert p.expects_continue
    assert p.in_progress and not p.requests
    p.feed(b"he")
    assert not p.expects_continue
    p.feed(b"llo")
    assert not p.expects_continue
    assert p.requests[0].body == b"hello"


def test_expect_continue_with_the_body_in_the_same_feed():
    p = feed(b"POST /e HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi")
    assert not p.expects_continue
    assert p.requests[0].body == b"hi"


def test_expect_continue_case_insensitive_and_chunked():
    p = parser()
    p.feed(b"POST /e HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-Continue\r\n\r\n")
    assert p.expects_continue
    p.feed(b"2\r\nhi\r\n0\r\n\r\n")
    assert not p.expects_continue
    assert p.requests[0].body == b"hi"


def test_expect_continue_without_a_body_is_not_continued():
    p = feed(b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n")
    assert not p.expects_continue
    assert len(p.requests) == 1


def test_other_expectation_with_a_body_is_417():
    assert_error(feed(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nExpect: something\r\n\r\nx"),
                 417, "expectation_failed")


def test_expect_continue_with_too_large_content_length_is_413():
    p = feed(b"POST / HTTP/1.1\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
    assert_error(p, 413)
    assert not p.expects_continue


# -- upgrade -----------------------------------------------------------------------------------

def test_upgrade_request_sets_upgraded_and_stops_parsing():
    p = feed(b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
             b"Sec-WebSocket-Version: 13\r\n\r\n\x81\x05hello")
    assert p.upgraded
    assert p.error is None
    assert [r.target for r in p.requests] == [b"/chat"]
    p.feed(b"GET /more HTTP/1.1\r\n\r\n")
    assert len(p.requests) == 1
    assert p.error is None


def test_plain_request_is_not_upgraded():
    assert not feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").upgraded
