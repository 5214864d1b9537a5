"""The check the refusal tests share (not a test file): `lgc ARGV` is refused the way every user error is,
exit status 2 (returned, or through argparse's SystemExit) and one stderr line, no traceback."""
from lgc.cli import main

RUN_NOTES = ("lgc: reusing", "lgc: resuming")  # lgc.runs says which run it reuses or resumes, before a refusal


def refused(capsys, argv, *matches, notes=()):
    """main(argv) exits 2 with one stderr line (besides lines starting with `notes`) holding every one of
    `matches`; returns what it printed on stdout."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith(notes)] if notes else err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for m in matches:
        assert m in err, err
    return out
