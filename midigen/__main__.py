from midigen.cli import main

main()
