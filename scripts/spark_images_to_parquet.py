#!/usr/bin/env python3
"""Read a folder of images with Spark's image data source and save it as Parquet for Ember.

The images are found under SRC as `<split>/<class>/<file>` (split `train` or `test`) or
`<class>/<file>` (then a seeded `--test-fraction` of them is marked `test`). Each row keeps
Spark's `image` struct as the data source gives it (BGR bytes, OpenCV `mode`) and gets a
string `label` (the class folder) and a `split` column (`train` or `test`):

    spark-submit scripts/spark_images_to_parquet.py SRC OUT.parquet
    ember train --dataset OUT.parquet --split-column split ...
"""

import argparse
import sys


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", help="the folder of images")
    p.add_argument("out", help="the Parquet folder to write (replaced if it exists)")
    p.add_argument("--test-fraction", type=float, default=0.1,
                   help="for <class>/<file> folders: the share of images marked test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--partitions", type=int, default=0,
                   help="Parquet part files to write (0: as Spark reads them)")
    p.add_argument("--master", default=None, help="Spark master outside spark-submit")
    args = p.parse_args(argv)

    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    builder = SparkSession.builder.appName("ember-images-to-parquet")
    if args.master:
        builder = builder.master(args.master)
    spark = builder.config("spark.ui.showConsoleProgress", "false").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    images = (spark.read.format("image")
              .option("dropInvalid", True)
              .option("recursiveFileLookup", True)
              .load(args.src))
    parts = F.split(F.col("image.origin"), "/")
    parent = F.element_at(parts, -3)
    images = images.withColumn("label", F.element_at(parts, -2))
    marked = F.when(parent.isin("train", "test"), parent)
    drawn = F.when(F.rand(args.seed) < args.test_fraction, "test").otherwise("train")
    images = images.withColumn("split", F.coalesce(marked, drawn))
    if args.partitions:
        images = images.repartition(args.partitions)
    images.write.mode("overwrite").parquet(args.out)
    saved = spark.read.parquet(args.out)
    counts = saved.groupBy("split").count().orderBy("split").collect()
    print(f"wrote {saved.count()} images to {args.out}: "
          + ", ".join(f"{r['split']} {r['count']}" for r in counts))
    saved.printSchema()
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
