"""The benchmark harness behind scripts/bench (see its docstring for usage).

Standard library only (Python 3.11): Python orchestrates, wrk generates the load.

    env     settings changed from the defaults, the service's environment, the machine,
            psql / redis-cli / wrk / cargo and the checks that they work
    server  starting the service and waiting until /readyz answers, stopping it, its
            log, its RSS and CPU time from /proc
    wrk     one wrk run with a Lua script of bench/, and its checked result
    seed    registered users, sessions seeded into the database, wrk's token files;
            the wave-2 accounts (TOTP on, passkeys held by bench/passkey-signer) and
            the second steps of logins seeded into Redis
    cells   the operations and how each is measured, the login flood, the hashing
            ceiling, the checkpoint before and the settling after each run
    report  the Markdown table, the targets met or missed, the JSON report
    bench   one benchmark from set-up to clean-up
    cli     the command line and main
"""
