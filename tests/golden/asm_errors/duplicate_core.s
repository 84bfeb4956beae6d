.core 0 1
    halt

.core 0 1
    halt
