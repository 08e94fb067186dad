"""test_s3_spark: Spark (delta-spark + hadoop-aws 3.3.4, matching Spark 3.5.3's Hadoop) reads
the Delta tables fhirlake writes on s3:// through s3a://, against the same loopback S3 server
as test_s3 (its fixture). Skipped when the hadoop-aws jars are not in ~/.ivy2 (run
`python3 tests/integration/test_s3_spark.py --warm-spark`, done by scripts/setup.sh).

Also usable as a script: --warm-spark fetches the jars through spark.jars.packages."""
import os
import sys

import pytest

HADOOP_AWS = "org.apache.hadoop:hadoop-aws:3.3.4"
JAR = os.path.expanduser("~/.ivy2/jars/org.apache.hadoop_hadoop-aws-3.3.4.jar")


def spark_s3_session(endpoint=None, key=None, secret=None, warehouse_dir=None):
    import pyspark
    from delta import configure_spark_with_delta_pip
    b = (pyspark.sql.SparkSession.builder.master("local[1]").appName("fhirlake-s3-tests")
         .config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "2")
         .config("spark.databricks.delta.snapshotPartitions", "1")
         .config("spark.default.parallelism", "1")
         .config("spark.sql.session.timeZone", "UTC")
         .config("spark.driver.memory", "1g")
         .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
         .config("spark.sql.catalog.spark_catalog",
                 "org.apache.spark.sql.delta.catalog.DeltaCatalog"))
    if endpoint:
        b = (b.config("spark.hadoop.fs.s3a.endpoint", endpoint)
             .config("spark.hadoop.fs.s3a.path.style.access", "true")
             .config("spark.hadoop.fs.s3a.connection.ssl.enabled", "false")
             .config("spark.hadoop.fs.s3a.access.key", key)
             .config("spark.hadoop.fs.s3a.secret.key", secret)
             .config("spark.hadoop.fs.s3a.endpoint.region", "us-east-1")
             .config("spark.hadoop.fs.s3a.aws.credentials.provider",
                     "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider")
             .config("spark.hadoop.fs.s3a.impl", "org.apache.hadoop.fs.s3a.S3AFileSystem")
             # s3:// as Databricks spells it, served by the same S3A client
             .config("spark.hadoop.fs.s3.impl", "org.apache.hadoop.fs.s3a.S3AFileSystem"))
    if warehouse_dir:
        b = b.config("spark.sql.warehouse.dir", warehouse_dir)
    s = configure_spark_with_delta_pip(b, extra_packages=[HADOOP_AWS]).getOrCreate()
    s.sparkContext.setLogLevel("ERROR")
    return s


if __name__ == "__main__":
    if "--warm-spark" in sys.argv:
        s = spark_s3_session()
        assert s.range(2).count() == 2
        s.stop()
        print("hadoop-aws jars ready")
    sys.exit(0)

from delta_helpers import deltatool, norm_rows  # noqa: E402
from test_s3 import BUCKET, KEY, read_rs, s3, uniq  # noqa: E402,F401  (s3: the fixture)


@pytest.fixture(scope="module")
def spark(s3):
    pytest.importorskip("pyspark")
    if not os.path.exists(JAR):
        pytest.skip("hadoop-aws jars not fetched (scripts/setup.sh)")
    s = spark_s3_session(s3["endpoint"], KEY["AWS_ACCESS_KEY_ID"], KEY["AWS_SECRET_ACCESS_KEY"])
    yield s
    s.stop()


def test_spark_reads_fhirlake_s3_table(s3, spark):
    url = f"s3://{BUCKET}/t/{uniq('spark')}"
    schema = "id:string,n:long,d:date,tags:string[]"
    deltatool("write", url, "--schema", schema, "--mode", "merge", "--key", "id",
              rows=[{"id": f"k{i}", "n": i, "d": "2024-01-0%d" % (i % 9 + 1), "tags": ["a"]}
                    for i in range(20)])
    deltatool("write", url, "--schema", schema, "--mode", "merge", "--key", "id",
              rows=[{"id": "k3", "n": 333, "d": None, "tags": None}])
    deltatool("checkpoint", url)
    got = norm_rows([r.asDict(recursive=True) for r in
                     spark.read.format("delta").load("s3a" + url[2:]).collect()])
    assert got == read_rs(s3, url)
    assert len(got) == 20 and [r["n"] for r in got if r["id"] == "k3"] == [333]
