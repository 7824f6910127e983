"""`python -m zoo.cli`: the same as the `zoo` command."""

try:
    from zoo.cli import main
except KeyboardInterrupt:  # Ctrl-C before zoo.cli finished importing
    import sys

    sys.stdout.write("\n")
    sys.stderr.write("zoo: interrupted\n")
    sys.exit(130)

main()
