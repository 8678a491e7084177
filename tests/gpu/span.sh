#!/bin/sh
# Records when it ran and which GPUs it saw, holds the GPU slot briefly, reports once.
start=$(date +%s.%N)
sleep 2
echo "{\"start\": $start, \"end\": $(date +%s.%N), \"cuda\": \"$CUDA_VISIBLE_DEVICES\"}" >> "$SPANS/$HYPERFLEET_TRIAL_ID.json"
echo '@hyperfleet report {"ok": 1}'
