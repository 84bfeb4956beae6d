; xbarc assembly

.core 0 0
    load r2048, [458], n=128                            ; @fc1
    load r2176, [586], n=128                            ; @fc1
    load r0, [0], n=64                                  ; @fc1
    load r128, [0], n=64                                ; @fc1
    mvm 0b11, ibits=8, adc=10, shift=1, obits=16, enc=0, skip=-1  ; @fc1
    add r1024, r1024, r2048, n=128, w=16                ; @fc1
    relu r1024, r1024, n=128                            ; @fc1
    rqnt r1024, r1024, n=128, shift=7, w=8              ; @fc1
    store [64], r1024, n=128, count=0                   ; @fc1
    add r1152, r1152, r2176, n=128, w=16                ; @fc1
    relu r1152, r1152, n=128                            ; @fc1
    rqnt r1152, r1152, n=128, shift=7, w=8              ; @fc1
    store [192], r1152, n=128, count=0                  ; @fc1
    halt                                                ; @fc1

.core 0 1
    load r2048, [714], n=128                            ; @fc2
    load r0, [64], n=128                                ; @fc2
    load r128, [192], n=128                             ; @fc2
    mvm 0b11, ibits=8, adc=10, shift=2, obits=16, enc=0, skip=-1  ; @fc2
    add r1024, r1024, r1152, n=128, w=16                ; @fc2
    add r1024, r1024, r2048, n=128, w=16                ; @fc2
    relu r1024, r1024, n=128                            ; @fc2
    rqnt r1024, r1024, n=128, shift=7, w=8              ; @fc2
    store [320], r1024, n=128, count=0                  ; @fc2
    halt                                                ; @fc2

.core 0 2
    load r2048, [842], n=10                             ; @fc3
    load r0, [320], n=128                               ; @fc3
    mvm 0b1, ibits=8, adc=10, shift=2, obits=16, enc=0, skip=-1  ; @fc3
    add r1024, r1024, r2048, n=10, w=16                 ; @fc3
    store [448], r1024, n=10, count=0                   ; @fc3
    halt                                                ; @fc3
