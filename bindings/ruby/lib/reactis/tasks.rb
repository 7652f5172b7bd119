# frozen_string_literal: true

# Rake tasks for running reactis workers from a Procfile, as resque's
# tasks.rb does. In the application's Rakefile:
#
#   require "reactis/tasks"
#   task "reactis:setup" => :environment    # Rails: load the app and its handlers
#   # or: namespace(:reactis) { task(:setup) { require_relative "app/handlers" } }
#
# and in the Procfile:
#
#   worker: bundle exec rake reactis:work QUEUE=sms
#   listener: bundle exec rake reactis:listen
#
# Environment: QUEUE (one name, a comma-separated list, or * for every
# registered queue), REDIS_URL (default redis://localhost:6379), CONCURRENCY
# (threads per queue, default 1), REACTIS_REQUIRE (files the setup task
# requires, comma-separated: for apps without an :environment task),
# CHANNELS / PATTERNS (limit reactis:listen to these, comma-separated),
# LOG_LEVEL (debug, info, warn; default info for these tasks).
# SIGTERM (what Heroku and foreman send) and SIGINT stop gracefully: the jobs
# in hand finish and are acked, then the task exits 0.

require "rake"

namespace :reactis do
  desc "Load the application's reactis handlers (extend it: task 'reactis:setup' => :environment)"
  task :setup do
    ENV.fetch("REACTIS_REQUIRE", "").split(",").map(&:strip).reject(&:empty?).each do |f|
      require File.expand_path(f)
    end
  end

  task :logging do
    require "reactis"
    level = ENV.fetch("LOG_LEVEL", "info").upcase
    Reactis.logger.level = Logger.const_get(level) if Logger.const_defined?(level)
  end

  desc "Work a queue: QUEUE=name[,name] [REDIS_URL=redis://...] [CONCURRENCY=1]"
  task work: %i[setup logging] do
    queue = ENV["QUEUE"] || ENV["QUEUES"]
    abort "reactis:work: set QUEUE=name (registered: #{Reactis.handlers.keys.join(', ')})" if queue.to_s.empty?
    concurrency = Integer(ENV.fetch("CONCURRENCY", "1"), 10)
    Reactis.work(queue, url: ENV["REDIS_URL"], concurrency: concurrency)
  end

  desc "Dispatch messages to the registered listeners: [CHANNELS=a,b] [PATTERNS=p*] [REDIS_URL=...]"
  task listen: %i[setup logging] do
    list = ->(name) { ENV[name]&.split(",")&.map(&:strip)&.reject(&:empty?) }
    Reactis.listen(url: ENV["REDIS_URL"], channels: list.call("CHANNELS"), patterns: list.call("PATTERNS"))
  end
end
