from rise_exp.cli import main

main()
