"""The `studio` command: `commands` builds the parser and runs each subcommand; the larger
subcommands live beside it (eval, jobs, make, rewards, runs, scale), `output` prints for all."""
