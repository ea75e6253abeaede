from analyzer.cli import main


def test_no_command_prints_help_and_exits_with_usage_code(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out.lower()
