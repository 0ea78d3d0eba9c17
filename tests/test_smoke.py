def test_at_ok(raw_dut):
    assert raw_dut.cmd("AT") == b"AT\r\n\r\nOK\r\n"
