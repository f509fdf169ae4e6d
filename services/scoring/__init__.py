"""The ONNX GBM + LSTM ensemble behind a gRPC server and a Kafka consumer of applications."""
