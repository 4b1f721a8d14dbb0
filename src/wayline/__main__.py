from wayline.launch import main

main()
