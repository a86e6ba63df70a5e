from ripdep.cli import main

main()
