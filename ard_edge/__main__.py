from ard_edge.cli.main import main

main()
