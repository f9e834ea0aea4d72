from cuirass.cli import main

main()
