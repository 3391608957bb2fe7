from gptrelay.cli import main

main()
