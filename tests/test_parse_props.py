"""Property tests of the parser and the engine under CPython (no board).

at.parse and at.engine import nothing platform-specific, so they run here as
they do on the chip; the engine gets a fake loop and a fake UART writer.
"""
import pathlib
import re
import sys

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

LIB = pathlib.Path(__file__).resolve().parent.parent / "lib"
if str(LIB) not in sys.path:
    sys.path.insert(0, str(LIB))

from at import parse  # noqa: E402
from at.errors import ATError  # noqa: E402
from at import errors  # noqa: E402
from at import engine as engine_mod  # noqa: E402

pytestmark = pytest.mark.timeout(60)

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
BUSY = b"\r\nbusy p...\r\n"
MAXLINE = 256

# Byte soup biased toward what matters to an AT parser.
TOKENS = [b"AT", b"AT+", b"at", b"\r", b"\n", b"\r\n", b"AT\r\n", b'"', b"\\", b",", b"=", b"?",
          b"=?", b"0", b"1", b"-", b"0x", b"\x00", b"\xff", b"\xfe", b"\xc3", b"E0", b"+X", b" "]
soup = st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=8)), max_size=60).map(b"".join)
any_bytes = st.one_of(st.binary(max_size=400), soup)


def quote(s):
    """Quote a str the way a host must (AT_Command_Set_index.rst: \\\\, \\, and \\")."""
    return b'"' + s.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b",", b"\\,") + b'"'


# -- parse.split / parse.args: only ATError, ever ----------------------------------------

@SETTINGS
@given(any_bytes)
def test_split_raises_only_aterror(line):
    try:
        name, kind, rest = parse.split(line)
    except ATError as e:
        assert (e.code >> 24) == 1 and ((e.code >> 16) & 0xFF) in range(1, 13)
        return
    assert line[:2] == b"AT"
    assert isinstance(name, str)
    assert kind in (parse.TEST, parse.QUERY, parse.SET, parse.EXEC)
    assert (rest is not None) == (kind == parse.SET)


@SETTINGS
@given(any_bytes)
def test_args_raises_only_aterror(rest):
    try:
        a = parse.args(rest)
    except ATError as e:
        sub = (e.code >> 16) & 0xFF
        assert e.code >> 24 == 1
        assert sub in (errors.PARA_TYPE, errors.PARA_PARSE)
        return
    assert len(a) >= 1
    for v in a:
        assert v is None or isinstance(v, (int, str))


@SETTINGS
@given(any_bytes, st.integers(0, 12), st.integers(-5, 5), st.integers(-5, 100))
def test_helpers_raise_only_aterror(rest, i, lo, width):
    try:
        a = parse.args(rest)
    except ATError:
        return
    hi = lo + width
    for f in (lambda: parse.count(a, max(lo, 0), max(hi, 0)),
              lambda: parse.num(a, i, lo, hi),
              lambda: parse.num(a, i, lo, hi, 7),
              lambda: parse.text(a, i, max(width, 0)),
              lambda: parse.text(a, i, max(width, 0), None),
              lambda: parse.choice(a, i, ("TCP", "UDP"), "TCP")):
        try:
            f()
        except ATError:
            pass


# -- round trips ------------------------------------------------------------------------------

value = st.one_of(st.text(max_size=40), st.integers(-(10 ** 10 - 1), 10 ** 10 - 1), st.none())


def encode(v):
    if v is None:
        return b""
    if isinstance(v, int):
        return str(v).encode()
    return quote(v)


@SETTINGS
@given(st.lists(value, min_size=1, max_size=10))
def test_round_trip(values):
    assert parse.args(b",".join(encode(v) for v in values)) == values


@SETTINGS
@given(st.text(max_size=80))
def test_quoted_string_round_trip(s):
    assert parse.args(quote(s)) == [s]
    assert parse.args(quote(s) + b"," + quote(s[::-1]) + b",1") == [s, s[::-1], 1]


@SETTINGS
@given(st.text(alphabet=st.characters(blacklist_characters='\\",', blacklist_categories=("Cs",)), max_size=40))
def test_backslash_before_any_byte_is_dropped(s):
    # "\<any>: drop the backslash and use <any>"
    escaped = "".join("\\" + c for c in s)
    assert parse.args(('"%s"' % escaped).encode()) == [s]


@SETTINGS
@given(st.integers(-(10 ** 10 - 1), 10 ** 10 - 1))
def test_int_round_trip(n):
    assert parse.args(str(n).encode()) == [n]
    assert parse.args(b"%d,%d" % (n, -n)) == [n, -n]


@SETTINGS
@given(st.integers(0, 0xFFFFFFFF), st.booleans())
def test_hex_int_round_trip(n, upper):
    h = ("0X%X" if upper else "0x%x") % n
    assert parse.args(h.encode()) == [n]


@SETTINGS
@given(st.integers(10 ** 10, 10 ** 30))
def test_too_many_digits_is_a_type_error(n):
    with pytest.raises(ATError) as e:
        parse.args(b"1," + str(n).encode())
    assert e.value.code == errors.code(errors.PARA_TYPE, 1)


@SETTINGS
@given(st.text(max_size=20), st.integers(0, 5))
def test_unterminated_string_is_a_parse_error(s, idx):
    line = b"1," * idx + quote(s)[:-1]
    assume(not line.endswith(b"\\"))
    with pytest.raises(ATError) as e:
        parse.args(line)
    assert e.value.code == errors.code(errors.PARA_PARSE, idx)


@SETTINGS
@given(st.text(alphabet=st.characters(min_codepoint=0x41, max_codepoint=0x5A), min_size=1, max_size=12),
       st.sampled_from([(b"", parse.EXEC), (b"?", parse.QUERY), (b"=?", parse.TEST)]))
def test_split_kinds(name, tail):
    suffix, kind = tail
    assert parse.split(b"AT+" + name.encode() + suffix) == ("+" + name, kind, None)
    assert parse.split(b"AT+" + name.encode() + b"=1,\"?=\"") == ("+" + name, parse.SET, b'1,"?="')


# -- the engine, fed arbitrary chunks ------------------------------------------------------------

class FakeLoop:
    def __init__(self):
        self.timers = []

    def later(self, ms, cb):
        t = (ms, cb)
        self.timers.append(t)
        return t

    def cancel(self, t):
        if t in self.timers:
            self.timers.remove(t)

    def on_read(self, obj, cb):
        pass

    def on_write(self, obj, cb):
        pass


class FakeOut:
    def __init__(self):
        self.data = bytearray()
        self.blocked = False

    def write(self, b):
        self.data += b


class Log:
    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s


def make_engine(echo, syslog=0, rows=None):
    eng = engine_mod.Engine(FakeLoop(), FakeOut(), Log())
    eng.add(rows or [("", None, None, None, lambda at: None)])
    eng.echo = echo
    eng.syslog = syslog
    return eng


def ref_lines(data):
    """The reference line splitter: a line ends at LF, or at a CR followed by another byte."""
    lines = []
    cur = bytearray()
    for b in data:
        if cur and cur[-1] == 13 and b != 10:
            lines.append(bytes(cur))
            cur = bytearray()
        cur.append(b)
        if b == 10:
            lines.append(bytes(cur))
            cur = bytearray()
    return lines


def expected(lines):
    """What the one-row engine must print for these lines, echo on, AT+SYSLOG=0."""
    out = bytearray()
    for ln in lines:
        if len(ln) > MAXLINE + 2:
            out += ERROR  # too long: not kept, so not echoed
            continue
        out += ln
        out += OK if ln == b"AT\r\n" else ERROR
    return bytes(out)


def feed_chunks(eng, data, cuts, pad):
    """Feed data in chunks, each in a reused buffer bigger than the chunk (like the UART's rx)."""
    pos = 0
    for c in sorted(set(cuts)) + [len(data)]:
        if c <= pos:
            continue
        chunk = data[pos:c]
        buf = bytearray(chunk + pad)
        eng.feed(buf, len(chunk))
        pos = c


stream = st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=6),
                            st.integers(200, 600).map(lambda n: b"Z" * n)), max_size=40).map(b"".join)


@SETTINGS
@given(stream, st.lists(st.integers(0, 3000), max_size=12), st.binary(max_size=8))
def test_engine_echo_and_one_result_per_line(data, cuts, pad):
    eng = make_engine(echo=True)
    feed_chunks(eng, data, cuts, pad)
    assert bytes(eng.out.data) == expected(ref_lines(data))
    assert eng.log.text == ""


@SETTINGS
@given(stream, st.lists(st.integers(0, 3000), max_size=12))
def test_engine_syslog_one_result_per_line(data, cuts):
    eng = make_engine(echo=False, syslog=1)
    feed_chunks(eng, data, cuts, b"")
    lines = ref_lines(data)
    out = bytes(eng.out.data)
    results = re.findall(rb"(?:ERR CODE:0x(01[0-9a-f]{6})\r\n)?\r\n(OK|ERROR)\r\n", out)
    # Nothing but results (and their codes) is printed by a one-row table with echo off.
    assert b"".join((b"ERR CODE:0x%s\r\n" % c if c else b"") + b"\r\n" + r + b"\r\n" for c, r in results) == out
    assert len(results) == len(lines)
    for ln, (c, r) in zip(lines, results):
        if ln == b"AT\r\n":
            assert (c, r) == (b"", b"OK")
        else:
            assert r == b"ERROR" and c, (ln, c, r)
            sub = int(c, 16) >> 16 & 0xFF
            if len(ln) > MAXLINE + 2:
                assert sub == errors.COMMON
            elif not ln.endswith(b"\r\n"):
                assert sub == errors.NO_TERMINATOR
            elif not ln.startswith(b"AT"):
                assert sub == errors.NO_AT


@SETTINGS
@given(stream, st.lists(st.integers(0, 3000), max_size=12))
def test_engine_busy_while_a_command_runs(data, cuts):
    def wait(eng):
        yield eng.sleep(1000)  # the fake loop never fires it: the command runs for ever

    eng = make_engine(echo=True, rows=[("", None, None, None, lambda eng: None),
                                       ("+WAIT", None, None, None, wait)])
    eng.feed(bytearray(b"AT+WAIT\r\n"), 9)
    assert bytes(eng.out.data) == b"AT+WAIT\r\n"
    eng.out.data.clear()
    data += b"\r\n"  # end the last line too
    feed_chunks(eng, data, cuts, b"")
    # Every line gets "busy p..." and nothing else: no echo, no result.
    assert bytes(eng.out.data) == BUSY * len(ref_lines(data))
    # The command ends: OK, and the board answers again.
    eng.out.data.clear()
    eng.loop.timers[0][1]()
    eng.feed(bytearray(b"AT\r\n"), 4)
    assert bytes(eng.out.data) == OK + b"AT\r\n" + OK


@SETTINGS
@given(st.integers(0, MAXLINE + 40), st.integers(1, 64))
def test_engine_line_length_limit(n, chunk):
    """A command of up to 256 bytes (plus CR LF) is taken; a longer one is ERROR, fed in any chunk size."""
    eng = make_engine(echo=False, syslog=1)
    line = b"AT+" + b"Q" * n + b"\r\n"
    for i in range(0, len(line), chunk):
        eng.feed(bytearray(line[i:i + chunk]), len(line[i:i + chunk]))
    code = errors.UNSUPPORTED if len(line) <= MAXLINE + 2 else errors.COMMON
    assert bytes(eng.out.data) == b"ERR CODE:0x%08x\r\n" % errors.code(code) + ERROR
    eng.out.data.clear()
    eng.feed(bytearray(b"AT\r\n"), 4)
    assert bytes(eng.out.data) == OK


def test_engine_lone_cr_answers_at_once():
    eng = make_engine(echo=True)
    eng.feed(bytearray(b"AT\r"), 3)
    assert bytes(eng.out.data) == b""  # an LF may still come
    eng.feed(bytearray(b"X"), 1)
    assert bytes(eng.out.data) == b"AT\r" + ERROR
    eng.feed(bytearray(b"\r\nAT\r\n"), 6)
    assert bytes(eng.out.data) == b"AT\r" + ERROR + b"X\r\n" + ERROR + b"AT\r\n" + OK


def test_engine_crlf_split_across_chunks():
    eng = make_engine(echo=True)
    for b in b"AT\r\n":
        eng.feed(bytearray([b]), 1)
    assert bytes(eng.out.data) == b"AT\r\n" + OK


@SETTINGS
@given(st.text(max_size=40), st.integers(0, 70), st.integers(0, 3))
def test_text_length_is_counted_in_bytes(s, maxlen, minlen):
    """ESP-AT's string limits are bytes ("MAX: 64-byte ASCII"), whatever the characters."""
    n = len(s.encode())
    try:
        assert parse.text([s], 0, maxlen, minlen=minlen) == s
        assert minlen <= n <= maxlen
    except ATError as e:
        assert e.code == errors.code(errors.PARA_LENGTH, 0)
        assert not minlen <= n <= maxlen
