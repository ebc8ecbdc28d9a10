"""`python -m hyperscope.cli`: the same as the `hyperscope` command."""

from hyperscope.__main__ import main

main()
