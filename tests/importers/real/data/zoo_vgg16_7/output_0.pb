
Bvgg0_dense2_fwdJ(<·¾{Ÿ>‡ú¾³q?&¿w?¢?gŽ|>ù¾>wcI¿f>