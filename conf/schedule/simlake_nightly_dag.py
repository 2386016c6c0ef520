"""Airflow DAG of the nightly simlake ingest on a Spark cluster (copy into the DAGs folder and
set the paths). The job ships its Python environment (``venv-pack`` of a venv with
``simlake[spark]``) with ``--archives``, so the workers need nothing installed; see
``docs/deployment.md``.

``ingest`` runs ``spark-submit``; its exit code is the ingest's (0 ok, 1 fault, 2 rejected files
or failed folders, 3 concurrent-run conflicts, 4 nothing to ingest). SparkSubmitOperator only
sees "non-zero", so ``check`` reads the run record the ingest writes (``--summary-json``) and
says which: rejected files fail the DAG run with the files named (the good data is
committed), an empty tree is skipped, a conflict or fault fails after the retries (every rerun
completes what the previous one left).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from airflow import DAG
from airflow.exceptions import AirflowException, AirflowSkipException
from airflow.operators.python import PythonOperator
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

RAW = "/data/simrun"
DB = "/data/simlake/db"
RECORDS = "/data/simlake/runs"  # one JSON run record per DAG run
ENV_ARCHIVE = "/opt/simlake/simlake-env.tar.gz"  # venv-pack -p VENV -o ... (docs/deployment.md)
JOB = "/opt/simlake/jobs/ingest_simrun.py"  # jobs/ingest_simrun.py of the release
RECORD = RECORDS + "/nightly-{{ ds_nodash }}.json"


def check_run_record(record_path: str) -> None:
    """Classify the ingest's run by its record's ``exit_code``."""
    try:
        with open(record_path, encoding="utf-8") as fh:
            record = json.load(fh)
    except OSError as exc:
        raise AirflowException(f"no run record {record_path}: the ingest did not start") from exc
    code = record.get("exit_code")
    if code == 0:
        return
    if code == 4:
        raise AirflowSkipException(f"nothing to ingest in {RAW}")
    if code == 2:
        raise AirflowException(f"rejected files (good data committed): {record.get('rejected')}")
    raise AirflowException(f"ingest exited {code}: {record.get('error')}")


with DAG(
    dag_id="simlake_nightly_ingest",
    schedule="30 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=10)},
) as dag:
    ingest = SparkSubmitOperator(
        task_id="ingest",
        conn_id="spark_default",  # the cluster's master URL
        application=JOB,
        application_args=[RAW, DB, "--profile", "cluster", "--summary-json", RECORD],
        packages="io.delta:delta-spark_2.13:4.0.0",
        archives=f"{ENV_ARCHIVE}#environment",
        conf={"spark.pyspark.python": "./environment/bin/python"},
    )
    check = PythonOperator(
        task_id="check",
        python_callable=check_run_record,
        op_args=[RECORD],
        trigger_rule="all_done",  # also after a failed ingest: say why it failed
        retries=0,
    )
    ingest >> check
