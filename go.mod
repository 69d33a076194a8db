module github.com/nibble-ml/nibble

go 1.26

require (
	github.com/syumai/workers v0.30.2
	github.com/x448/float16 v0.8.4
)

require github.com/coder/websocket v1.8.15 // indirect
