"""AT+SYSMFG (Basic_AT_Commands.rst; Espressif's sysmfg_at_examples): the
manufacturing key-value store behind the SSL certificates. Query, write (binary
and string values with the ">" data phase, integers with range checks), read
(namespaces, a namespace's keys with their types, a value with offset/length),
erase, bad input, and the files behind it on the virtual board."""
import os
import pathlib
import re

import pytest

# Keys the tests own. On a real board the factory namespaces hold real data, so
# the tests add and remove their own keys only; the one namespace they erase
# whole is wpa2_ca (no SSL feature of this firmware reads it).
BIN_NS, BIN_KEY = "client_cert", "client_cert.9"
INT_NS = "factory_param"
INT_KEYS = ["t_u8", "t_i8", "t_u16", "t_i16", "t_u32", "t_i32", "t_str", "t_mixed"]
WIPE_NS = "wpa2_ca"

READ_HDR = re.compile(rb'\+SYSMFG:"([^"]+)","([^"]+)",(\d+),(\d+),')


def _clean(d):
    d.cmd('AT+SYSMFG=0,"%s","%s"' % (BIN_NS, BIN_KEY))
    for k in INT_KEYS:
        d.cmd('AT+SYSMFG=0,"%s","%s"' % (INT_NS, k))
    d.ok('AT+SYSMFG=0,"%s"' % WIPE_NS)


@pytest.fixture
def mfg(dut):
    _clean(dut)
    yield dut
    _clean(dut)


def flash_dir(vboard):
    return pathlib.Path(vboard.log).parent / "flash"


def write_blob(d, ns, key, typ, data):
    """AT+SYSMFG=2 with the data phase: returns (bytes before the data, bytes after)."""
    d.write(b'AT+SYSMFG=2,"%s","%s",%d,%d\r\n' % (ns.encode(), key.encode(), typ, len(data)))
    head = d.read_until(b">")
    d.write(data)
    tail = d.read_until(re.compile(rb"\r\n(OK|ERROR)\r\n"), timeout=10)
    return head, tail


def read_value(d, ns, key, extra=""):
    """AT+SYSMFG=1 of one key: (type, length, value) parsed byte-exactly."""
    d.write(('AT+SYSMFG=1,"%s","%s"%s\r\n' % (ns, key, extra)).encode())
    hdr = d.read_until(READ_HDR)
    m = READ_HDR.search(hdr)
    assert hdr == m.group(0), hdr  # nothing before the response
    assert (m.group(1), m.group(2)) == (ns.encode(), key.encode())
    n = int(m.group(4))
    value = d.read_exactly(n)
    assert d.read_until(b"\r\nOK\r\n") == b"\r\n\r\nOK\r\n"
    return int(m.group(3)), n, value


# -- query ---------------------------------------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_query_lists_namespaces(mfg):
    d = mfg
    r = d.cmd("AT+SYSMFG?")
    assert re.fullmatch(rb'(\+SYSMFG:"[a-z0-9_]+"\r\n)+\r\nOK\r\n', r), r
    names = re.findall(rb'\+SYSMFG:"([^"]+)"', r)
    assert len(names) == len(set(names)), r  # each namespace once
    for ns in (b"factory_param", b"client_cert", b"client_key", b"client_ca",
               b"server_cert", b"server_key", b"server_ca"):
        assert ns in names, r
    # AT+SYSMFG=1 with nothing else reads the same list
    assert d.cmd("AT+SYSMFG=1") == r


# -- binary and string values ------------------------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_write_binary_with_data_phase_and_read_back(mfg):
    d = mfg
    data = bytes(range(256)) * 4 + b"\r\nAT\r\n+++\x00"  # every byte value, lines and +++ are data
    head, tail = write_blob(d, BIN_NS, BIN_KEY, 8, data)
    assert head.endswith(b">"), head  # the prompt's exact form: test_data_phase_prompt
    assert tail == b"\r\nOK\r\n", tail
    typ, n, value = read_value(d, BIN_NS, BIN_KEY)
    assert (typ, n) == (8, len(data))
    assert value == data
    # the exact bytes of the whole response
    want = b'+SYSMFG:"client_cert","client_cert.9",8,%d,' % len(data) + data + b"\r\n\r\nOK\r\n"
    d.write(b'AT+SYSMFG=1,"%s","%s"\r\n' % (BIN_NS.encode(), BIN_KEY.encode()))
    assert d.read_exactly(len(want)) == want
    assert d.quiet(0.2) == b""


@pytest.mark.timeout(30)
@pytest.mark.parametrize("typ", [7, 8])
def test_data_phase_prompt(mfg, typ):
    """Espressif's AT+SYSMFG examples show the write of a string or binary value as
    "OK", then ">", then "OK" once the data is in; lwESP's driver relies on it (it
    waits for the second OK). The same framing as AT+CIPSEND's prompt."""
    d = mfg
    head, tail = write_blob(d, INT_NS, "t_mixed", typ, b"abc")
    assert head == b"\r\nOK\r\n\r\n>", head
    assert tail == b"\r\nOK\r\n", tail


@pytest.mark.timeout(30)
def test_read_with_offset_and_length(mfg):
    d = mfg
    data = os.urandom(1164)
    write_blob(d, BIN_NS, BIN_KEY, 8, data)
    assert read_value(d, BIN_NS, BIN_KEY, ",100,200") == (8, 200, data[100:300])
    assert read_value(d, BIN_NS, BIN_KEY, ",0,1") == (8, 1, data[:1])
    assert read_value(d, BIN_NS, BIN_KEY, ",1163,1") == (8, 1, data[1163:])
    assert read_value(d, BIN_NS, BIN_KEY, ",0,1164") == (8, 1164, data)
    # beyond the value
    d.error('AT+SYSMFG=1,"%s","%s",1164,1' % (BIN_NS, BIN_KEY))
    d.error('AT+SYSMFG=1,"%s","%s",1000,200' % (BIN_NS, BIN_KEY))
    d.error('AT+SYSMFG=1,"%s","%s",0,0' % (BIN_NS, BIN_KEY))
    assert d.cmd("AT") == b"\r\nOK\r\n"


@pytest.mark.timeout(30)
def test_string_type_7(mfg):
    d = mfg
    head, tail = write_blob(d, INT_NS, "t_str", 7, b"MY-MODULE-01")
    assert tail == b"\r\nOK\r\n", tail
    assert d.cmd('AT+SYSMFG=1,"%s","t_str"' % INT_NS) == \
        b'+SYSMFG:"factory_param","t_str",7,12,MY-MODULE-01\r\n\r\nOK\r\n'
    # written again with a new length: the old value is replaced whole
    write_blob(d, INT_NS, "t_str", 7, b"SN1")
    assert d.cmd('AT+SYSMFG=1,"%s","t_str"' % INT_NS) == b'+SYSMFG:"factory_param","t_str",7,3,SN1\r\n\r\nOK\r\n'


@pytest.mark.timeout(30)
def test_binary_upto_8192_bytes(mfg):
    d = mfg
    data = os.urandom(8192)
    head, tail = write_blob(d, BIN_NS, BIN_KEY, 8, data)
    assert tail == b"\r\nOK\r\n"
    assert read_value(d, BIN_NS, BIN_KEY) == (8, 8192, data)


# -- integers ------------------------------------------------------------------------------------------------------
INTS = [  # type, key, lowest, highest
    (1, "t_u8", 0, 255),
    (2, "t_i8", -128, 127),
    (3, "t_u16", 0, 65535),
    (4, "t_i16", -32768, 32767),
    (5, "t_u32", 0, 4294967295),
    (6, "t_i32", -2147483648, 2147483647),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("typ,key,lo,hi", INTS)
def test_integer_types_and_ranges(mfg, typ, key, lo, hi):
    d = mfg
    for v in (lo, hi, (lo + hi) // 2):
        # integers are written in one command: no data phase
        assert d.cmd('AT+SYSMFG=2,"%s","%s",%d,%d' % (INT_NS, key, typ, v)) == b"\r\nOK\r\n"
        # <length> is the number of characters of the value's decimal form
        s = str(v).encode()
        assert d.cmd('AT+SYSMFG=1,"%s","%s"' % (INT_NS, key)) == \
            b'+SYSMFG:"%s","%s",%d,%d,%s\r\n\r\nOK\r\n' % (INT_NS.encode(), key.encode(), typ, len(s), s)
    for v in (lo - 1, hi + 1):
        assert d.cmd('AT+SYSMFG=2,"%s","%s",%d,%d' % (INT_NS, key, typ, v)) == b"\r\nERROR\r\n", v
    # the value out of range changed nothing
    s = str((lo + hi) // 2).encode()
    assert d.cmd('AT+SYSMFG=1,"%s","%s"' % (INT_NS, key)).endswith(b",%s\r\n\r\nOK\r\n" % s)


@pytest.mark.timeout(30)
def test_namespace_keys_with_types(mfg):
    d = mfg
    d.ok('AT+SYSMFG=2,"%s","t_u8",1,7' % INT_NS)
    d.ok('AT+SYSMFG=2,"%s","t_i32",6,115200' % INT_NS)
    write_blob(d, INT_NS, "t_str", 7, b"CN")
    r = d.cmd('AT+SYSMFG=1,"%s"' % INT_NS)
    assert r.endswith(b"\r\n\r\nOK\r\n"), r
    lines = r[:-len(b"\r\n\r\nOK\r\n")].split(b"\r\n")
    for line in lines:
        assert re.fullmatch(rb'\+SYSMFG:"factory_param","[^"]+",[1-8]', line), line
    mine = sorted(x for x in lines if b'"t_' in x)
    assert mine == [b'+SYSMFG:"factory_param","t_i32",6', b'+SYSMFG:"factory_param","t_str",7',
                    b'+SYSMFG:"factory_param","t_u8",1']
    # a key rewritten with another type reports the new one
    write_blob(d, INT_NS, "t_u8", 8, b"\x01\x02")
    r = d.cmd('AT+SYSMFG=1,"%s"' % INT_NS)
    assert b'+SYSMFG:"factory_param","t_u8",8\r\n' in r, r
    assert read_value(d, INT_NS, "t_u8") == (8, 2, b"\x01\x02")


# -- erase ---------------------------------------------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_erase_key_and_namespace(mfg):
    d = mfg
    write_blob(d, WIPE_NS, "wpa2_ca.0", 8, b"A" * 100)
    write_blob(d, WIPE_NS, "wpa2_ca.1", 8, b"B" * 50)
    assert d.cmd('AT+SYSMFG=1,"%s"' % WIPE_NS) == \
        b'+SYSMFG:"wpa2_ca","wpa2_ca.0",8\r\n+SYSMFG:"wpa2_ca","wpa2_ca.1",8\r\n\r\nOK\r\n'
    assert d.cmd('AT+SYSMFG=0,"%s","wpa2_ca.0"' % WIPE_NS) == b"\r\nOK\r\n"
    assert d.cmd('AT+SYSMFG=1,"%s"' % WIPE_NS) == b'+SYSMFG:"wpa2_ca","wpa2_ca.1",8\r\n\r\nOK\r\n'
    d.error('AT+SYSMFG=1,"%s","wpa2_ca.0"' % WIPE_NS)  # gone
    assert read_value(d, WIPE_NS, "wpa2_ca.1") == (8, 50, b"B" * 50)  # the other one stays
    write_blob(d, WIPE_NS, "wpa2_ca.2", 8, b"C")
    assert d.cmd('AT+SYSMFG=0,"%s"' % WIPE_NS) == b"\r\nOK\r\n"
    assert d.cmd('AT+SYSMFG=1,"%s"' % WIPE_NS) == b"\r\nOK\r\n"
    d.error('AT+SYSMFG=1,"%s","wpa2_ca.1"' % WIPE_NS)
    d.error('AT+SYSMFG=1,"%s","wpa2_ca.2"' % WIPE_NS)


# -- bad input -------------------------------------------------------------------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("line", [
    'AT+SYSMFG=1,"no_such_ns"',
    'AT+SYSMFG=1,"no_such_ns","k"',
    'AT+SYSMFG=0,"no_such_ns"',
    'AT+SYSMFG=2,"no_such_ns","k",1,1',
    'AT+SYSMFG=2,"no_such_ns","k",8,10',
    'AT+SYSMFG=3,"client_cert"',
    'AT+SYSMFG=-1',
    'AT+SYSMFG=2,"client_cert","client_cert.9",0,10',
    'AT+SYSMFG=2,"client_cert","client_cert.9",9,10',
    'AT+SYSMFG=2,"client_cert","client_cert.9",8',
    'AT+SYSMFG=2,"client_cert","client_cert.9"',
    'AT+SYSMFG=2,"client_cert","",8,10',
    'AT+SYSMFG=2,"client_cert","a_key_of_16_char",8,10',
    'AT+SYSMFG=2,"factory_param","t_u8",1,"7"',
    'AT+SYSMFG=2,"factory_param","t_u8",1,abc',
    'AT+SYSMFG=1,"client_cert","client_cert.9"',
    'AT+SYSMFG=0,"client_cert","client_cert.9"',
    'AT+SYSMFG=2,client_cert,"client_cert.9",8,10',
])
def test_bad_input(mfg, line):
    d = mfg
    assert d.cmd(line) == b"\r\nERROR\r\n", line
    # no data phase was entered: the next line is a command again
    assert d.quiet(0.1) == b""
    assert d.cmd("AT") == b"\r\nOK\r\n"


@pytest.mark.timeout(30)
def test_error_code_with_syslog(mfg):
    d = mfg
    d.ok("AT+SYSLOG=1")
    r = d.cmd('AT+SYSMFG=1,"no_such_ns"')
    assert re.fullmatch(rb"ERR CODE:0x01[0-9a-f]{6}\r\n\r\nERROR\r\n", r), r
    r = d.cmd('AT+SYSMFG=1,"%s","%s"' % (BIN_NS, BIN_KEY))
    assert re.fullmatch(rb"ERR CODE:0x01[0-9a-f]{6}\r\n\r\nERROR\r\n", r), r


# -- persistence and the files behind it --------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_survives_reset_and_restore(mfg):
    d = mfg
    data = os.urandom(700)
    write_blob(d, BIN_NS, BIN_KEY, 8, data)
    d.ok('AT+SYSMFG=2,"%s","t_u16",3,4242' % INT_NS)
    d.reset(restore=False)  # AT+RST
    d.ok("ATE0")
    assert read_value(d, BIN_NS, BIN_KEY) == (8, 700, data)
    d.reset(restore=True)  # AT+RESTORE restores settings, not the manufacturing data
    d.ok("ATE0")
    assert read_value(d, BIN_NS, BIN_KEY) == (8, 700, data)
    assert d.cmd('AT+SYSMFG=1,"%s","t_u16"' % INT_NS) == b'+SYSMFG:"factory_param","t_u16",3,4,4242\r\n\r\nOK\r\n'


@pytest.mark.timeout(30)
def test_file_layout(mfg, vboard):
    """One file per key, mfg/<namespace>/<key>, holding exactly the value's bytes;
    no temporary file is left behind; erase removes the file."""
    d = mfg
    root = flash_dir(vboard) / "mfg"
    data = os.urandom(1500)
    write_blob(d, BIN_NS, BIN_KEY, 8, data)
    f = root / BIN_NS / BIN_KEY
    assert f.is_file()
    assert f.read_bytes() == data
    write_blob(d, BIN_NS, BIN_KEY, 8, b"second")
    assert f.read_bytes() == b"second"
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    d.ok('AT+SYSMFG=0,"%s","%s"' % (BIN_NS, BIN_KEY))
    assert not f.exists()


@pytest.mark.timeout(30)
def test_file_copied_in_is_a_binary_key(mfg, vboard):
    """A certificate copied onto the filesystem (mpremote cp ... :mfg/<ns>/<key>)
    is a key like any other: listed as binary (8), readable."""
    d = mfg
    f = flash_dir(vboard) / "mfg" / WIPE_NS / "wpa2_ca.5"
    f.parent.mkdir(parents=True, exist_ok=True)
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    f.write_bytes(pem)
    assert d.cmd('AT+SYSMFG=1,"%s"' % WIPE_NS) == b'+SYSMFG:"wpa2_ca","wpa2_ca.5",8\r\n\r\nOK\r\n'
    assert read_value(d, WIPE_NS, "wpa2_ca.5") == (8, len(pem), pem)


@pytest.mark.timeout(30)
def test_half_written_file_is_not_a_key(mfg, vboard):
    """A power cut during a write leaves a temporary file next to the old value:
    the old value is what is read, and the leftover is no key."""
    d = mfg
    write_blob(d, BIN_NS, BIN_KEY, 8, b"old value")
    ns_dir = flash_dir(vboard) / "mfg" / BIN_NS
    leftovers = sorted(set(ns_dir.iterdir()))
    (ns_dir / (BIN_KEY + ".tmp")).write_bytes(b"half of a new va")
    try:
        r = d.cmd('AT+SYSMFG=1,"%s"' % BIN_NS)
        assert b".tmp" not in r, r
        assert b'+SYSMFG:"client_cert","client_cert.9",8\r\n' in r, r
        assert read_value(d, BIN_NS, BIN_KEY) == (8, 9, b"old value")
        # the next write still lands whole
        write_blob(d, BIN_NS, BIN_KEY, 8, b"new value!")
        assert read_value(d, BIN_NS, BIN_KEY) == (8, 10, b"new value!")
    finally:
        for p in ns_dir.iterdir():
            if p not in leftovers and p.name.endswith(".tmp"):
                p.unlink()
