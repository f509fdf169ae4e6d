{{/*
Kafka authentication and durability. global.kafka says how every service reaches the brokers
(ALAMA_KAFKA_SECURITY_PROTOCOL: SASL_SSL with SCRAM by default, SSL for mTLS) and how durable the
topics it creates are; the service's own `kafka` block names its principal: the SCRAM user with its
password from an existing Secret, or the client certificate's Secret for mTLS. The umbrella chart's
ACL job grants each principal exactly the topics and groups its service uses.
*/}}

{{- define "alama-lib.kafkaSasl" -}}
{{- if hasPrefix "SASL_" .Values.global.kafka.securityProtocol }}true{{ end -}}
{{- end -}}

{{- define "alama-lib.kafkaTls" -}}
{{- if has .Values.global.kafka.securityProtocol (list "SSL" "SASL_SSL") }}true{{ end -}}
{{- end -}}

{{/* Adds the plain Kafka settings to the dict `env`. */}}
{{- define "alama-lib.kafkaConfig" -}}
{{- $root := .root -}}
{{- $env := .env -}}
{{- $k := $root.Values.global.kafka -}}
{{- $protocol := $k.securityProtocol | default "PLAINTEXT" -}}
{{- if not (has $protocol (list "PLAINTEXT" "SASL_PLAINTEXT" "SASL_SSL" "SSL")) -}}
{{- fail (printf "global.kafka.securityProtocol %q is not PLAINTEXT, SASL_PLAINTEXT, SASL_SSL or SSL" $protocol) -}}
{{- end -}}
{{- $_ := set $env "ALAMA_KAFKA_SECURITY_PROTOCOL" $protocol -}}
{{- $_ := set $env "ALAMA_KAFKA_REPLICATION_FACTOR" (toString $k.replicationFactor) -}}
{{- $_ := set $env "ALAMA_KAFKA_MIN_INSYNC_REPLICAS" (toString $k.minInsyncReplicas) -}}
{{- if include "alama-lib.kafkaSasl" $root -}}
{{- $_ := set $env "ALAMA_KAFKA_SASL_MECHANISM" $k.saslMechanism -}}
{{- $_ := set $env "ALAMA_KAFKA_USERNAME" (required "kafka.username is required with SASL" $root.Values.kafka.username) -}}
{{- end -}}
{{- if include "alama-lib.kafkaTls" $root -}}
{{- with $k.caSecret }}{{ $_ := set $env "ALAMA_KAFKA_CA_FILE" "/etc/alama/kafka-ca/ca.crt" }}{{ end -}}
{{- if $root.Values.kafka.tlsSecret -}}
{{- $_ := set $env "ALAMA_KAFKA_CERT_FILE" "/etc/alama/kafka-tls/tls.crt" -}}
{{- $_ := set $env "ALAMA_KAFKA_KEY_FILE" "/etc/alama/kafka-tls/tls.key" -}}
{{- else if eq $protocol "SSL" -}}
{{- fail "global.kafka.securityProtocol SSL (mTLS) needs kafka.tlsSecret, the service's client certificate" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The SCRAM password, by reference only. */}}
{{- define "alama-lib.kafkaSecretEnv" -}}
{{- if include "alama-lib.kafkaSasl" . }}
{{ include "alama-lib.secretKeyRef" (dict "env" "ALAMA_KAFKA_PASSWORD" "ref" .Values.kafka.passwordSecret "root" .) }}
{{- end }}
{{- end -}}

{{- define "alama-lib.kafkaVolumeMounts" -}}
{{- if include "alama-lib.kafkaTls" . }}
{{- if .Values.global.kafka.caSecret }}
- name: kafka-ca
  mountPath: /etc/alama/kafka-ca
  readOnly: true
{{- end }}
{{- if .Values.kafka.tlsSecret }}
- name: kafka-tls
  mountPath: /etc/alama/kafka-tls
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}

{{- define "alama-lib.kafkaVolumes" -}}
{{- if include "alama-lib.kafkaTls" . }}
{{- with .Values.global.kafka.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ tpl . $ }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- with .Values.kafka.tlsSecret }}
- name: kafka-tls
  secret:
    secretName: {{ tpl . $ }}
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end }}
{{- end }}
{{- end -}}
